package registry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/minipipe/minipipe/internal/avro"
)

// Store is the registry's read model: the goka view of the schemas topic, kept in Pebble, plus the derived
// indexes its update callback maintains. Every method reads local state only.
type Store struct {
	view *goka.View // nil until attached
	log  *slog.Logger

	applied atomic.Int64 // highest offset of the schemas topic applied locally (-1: none)

	mu       sync.Mutex
	waiters  map[string]chan Reply // reply waiters by request id
	offsetCh chan struct{}         // closed and replaced whenever applied moves

	cache sync.Map // id -> *parsed (schemas by id are immutable)
}

type parsed struct {
	rec    *SchemaRecord
	schema *avro.Schema
	codec  *avro.Codec
	err    error
	once   sync.Once
}

func newStore(log *slog.Logger) *Store {
	s := &Store{log: log, waiters: map[string]chan Reply{}, offsetCh: make(chan struct{})}
	s.applied.Store(-1)
	return s
}

// update is the view's callback: it applies one record of the schemas topic to local storage and keeps the
// derived indexes in step. A malformed record is logged and skipped, never fatal: the log is shared.
func (s *Store) update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	err := s.apply(st, key, value)
	if err != nil {
		s.log.Warn("skipping malformed registry record", "key", key, "offset", ctx.Offset(), "error", err)
	}
	s.advance(ctx.Offset())
	return nil
}

func (s *Store) apply(st storage.Storage, key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, prefixAudit):
		return nil // read by `minipipe audit`, not kept
	case strings.HasPrefix(key, prefixReply):
		if value != nil {
			var r Reply
			if err := json.Unmarshal(value, &r); err != nil {
				return err
			}
			s.deliver(strings.TrimPrefix(key, prefixReply), r)
		}
		return nil
	case strings.HasPrefix(key, prefixSchema):
		if value == nil {
			return nil // ids are never removed
		}
		var rec SchemaRecord
		if err := json.Unmarshal(value, &rec); err != nil {
			return err
		}
		if rec.ID <= 0 || rec.Fingerprint == "" {
			return fmt.Errorf("schema record without id or fingerprint")
		}
		// An id claim: the first one in the log for an id, and for a schema, wins; a later one (from an
		// owner that had not seen it, two owners overlapping in a rebalance) is ignored by every instance
		// alike. Claims have keys of their own (schema/<id>/<nonce>), so compaction keeps them all, in
		// order, and a rebuilt store decides the same way.
		if old, err := getSchemaRecord(st, rec.ID); err != nil {
			return err
		} else if old != nil {
			if old.Fingerprint != rec.Fingerprint {
				s.log.Warn("ignoring a second claim of a schema id", "id", rec.ID, "offset_key", key)
			}
			return nil
		}
		if b, err := st.Get(prefixFingerprint + rec.Fingerprint); err != nil {
			return err
		} else if b != nil {
			s.log.Warn("ignoring a claim of a second id for a schema", "id", rec.ID, "schema_id", string(b))
			return nil
		}
		if err := st.Set(schemaKey(rec.ID), value); err != nil {
			return err
		}
		if err := st.Set(prefixFingerprint+rec.Fingerprint, []byte(strconv.Itoa(rec.ID))); err != nil {
			return err
		}
		maxID, err := getInt(st, keyMaxID)
		if err != nil {
			return err
		}
		if rec.ID > maxID {
			return st.Set(keyMaxID, []byte(strconv.Itoa(rec.ID)))
		}
		return nil
	case strings.HasPrefix(key, prefixSubject):
		old, err := st.Get(key)
		if err != nil {
			return err
		}
		if old != nil {
			var o VersionRecord
			if json.Unmarshal(old, &o) == nil {
				if err := s.unindexVersion(st, o); err != nil {
					return err
				}
			}
		}
		if value == nil {
			return st.Delete(key)
		}
		var v VersionRecord
		if err := json.Unmarshal(value, &v); err != nil {
			return err
		}
		if err := st.Set(key, value); err != nil {
			return err
		}
		return s.indexVersion(st, v)
	case key == keyConfig || strings.HasPrefix(key, prefixConfig) || key == keyMode || strings.HasPrefix(key, prefixMode):
		if value == nil {
			return st.Delete(key)
		}
		return st.Set(key, value)
	default:
		return fmt.Errorf("unknown key")
	}
}

func (s *Store) indexVersion(st storage.Storage, v VersionRecord) error {
	flag := "1"
	if v.Deleted {
		flag = "0"
	}
	if err := st.Set(useKey(v.ID, v.Subject, v.Version), []byte(flag)); err != nil {
		return err
	}
	rec, err := getSchemaRecord(st, v.ID)
	if err != nil || rec == nil {
		return err
	}
	for _, r := range rec.References {
		if err := st.Set(refByKey(r, v.Subject, v.Version), []byte{}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) unindexVersion(st storage.Storage, v VersionRecord) error {
	if err := st.Delete(useKey(v.ID, v.Subject, v.Version)); err != nil {
		return err
	}
	rec, err := getSchemaRecord(st, v.ID)
	if err != nil || rec == nil {
		return err
	}
	for _, r := range rec.References {
		if err := st.Delete(refByKey(r, v.Subject, v.Version)); err != nil {
			return err
		}
	}
	return nil
}

func getInt(st storage.Storage, key string) (int, error) {
	b, err := st.Get(key)
	if err != nil || b == nil {
		return 0, err
	}
	return strconv.Atoi(string(b))
}

func getSchemaRecord(st storage.Storage, id int) (*SchemaRecord, error) {
	b, err := st.Get(schemaKey(id))
	if err != nil || b == nil {
		return nil, err
	}
	var rec SchemaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// advance records that offset has been applied and wakes whoever waits for it.
func (s *Store) advance(offset int64) {
	if offset <= s.applied.Load() {
		return
	}
	s.applied.Store(offset)
	s.mu.Lock()
	close(s.offsetCh)
	s.offsetCh = make(chan struct{})
	s.mu.Unlock()
}

// appliedCh returns the applied offset and a channel closed when it next moves.
func (s *Store) appliedCh() (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied.Load(), s.offsetCh
}

func (s *Store) expect(request string) chan Reply {
	ch := make(chan Reply, 1)
	s.mu.Lock()
	s.waiters[request] = ch
	s.mu.Unlock()
	return ch
}

func (s *Store) forget(request string) {
	s.mu.Lock()
	delete(s.waiters, request)
	s.mu.Unlock()
}

func (s *Store) deliver(request string, r Reply) {
	s.mu.Lock()
	ch, ok := s.waiters[request]
	delete(s.waiters, request)
	s.mu.Unlock()
	if ok {
		ch <- r
	}
}

// --- reads ---------------------------------------------------------------------------------------------

func (s *Store) raw(key string) ([]byte, error) {
	if s.view == nil {
		return nil, errStore(fmt.Errorf("registry store is not open"))
	}
	v, err := s.view.Get(key)
	if err != nil {
		return nil, errStore(err)
	}
	if v == nil {
		return nil, nil
	}
	return v.([]byte), nil
}

func (s *Store) scan(prefix string, fn func(key string, value []byte) error) error {
	if s.view == nil {
		return errStore(fmt.Errorf("registry store is not open"))
	}
	it, err := s.view.IteratorWithRange(prefix, "")
	if err != nil {
		return errStore(err)
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return errStore(err)
		}
		b, _ := v.([]byte)
		if err := fn(it.Key(), b); err != nil {
			return err
		}
	}
	return nil
}

// SchemaByID returns the record of a schema id, or nil.
func (s *Store) SchemaByID(id int) (*SchemaRecord, error) {
	if p, ok := s.cache.Load(id); ok {
		return p.(*parsed).rec, nil
	}
	b, err := s.raw(schemaKey(id))
	if err != nil || b == nil {
		return nil, err
	}
	var rec SchemaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errStore(err)
	}
	p, _ := s.cache.LoadOrStore(id, &parsed{rec: &rec})
	return p.(*parsed).rec, nil
}

// Parsed returns the parsed schema and codec of an id, resolving references; cached, as ids never change.
func (s *Store) Parsed(id int) (*avro.Schema, *avro.Codec, error) {
	rec, err := s.SchemaByID(id)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, errSchemaNotFound(fmt.Sprintf("%d", id))
	}
	pv, _ := s.cache.Load(id)
	p := pv.(*parsed)
	p.once.Do(func() {
		named, err := s.resolveReferences(rec.References, 0)
		if err != nil {
			p.err = err
			return
		}
		sch, err := avro.ParseWith(rec.Schema, avro.ParseOptions{Named: named})
		if err != nil {
			p.err = fmt.Errorf("stored schema %d does not parse: %w", id, err)
			return
		}
		codec, err := avro.NewCodec(sch)
		if err != nil {
			p.err = fmt.Errorf("stored schema %d: %w", id, err)
			return
		}
		p.schema, p.codec = sch, codec
	})
	return p.schema, p.codec, p.err
}

// resolveReferences parses the schemas a schema refers to and returns their named types by full name.
func (s *Store) resolveReferences(refs []Reference, depth int) (map[string]*avro.Schema, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	if depth > 32 {
		return nil, errInvalidSchema("(references nested too deeply)")
	}
	named := map[string]*avro.Schema{}
	for _, r := range refs {
		v, err := s.Version(r.Subject, r.Version, true)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, errInvalidSchema(fmt.Sprintf("(reference %s to subject %s version %d not found)", r.Name, r.Subject, r.Version))
		}
		rec, err := s.SchemaByID(v.ID)
		if err != nil || rec == nil {
			return nil, errInvalidSchema(fmt.Sprintf("(reference %s: schema %d missing)", r.Name, v.ID))
		}
		inner, err := s.resolveReferences(rec.References, depth+1)
		if err != nil {
			return nil, err
		}
		sch, err := avro.ParseWith(rec.Schema, avro.ParseOptions{Named: inner})
		if err != nil {
			return nil, errInvalidSchema(fmt.Sprintf("(reference %s does not parse: %v)", r.Name, err))
		}
		for k, v := range inner {
			named[k] = v
		}
		collectNamed(sch, named, map[*avro.Schema]bool{})
	}
	return named, nil
}

// collectNamed gathers every named type defined in s, marked as external to whoever refers to them.
func collectNamed(s *avro.Schema, out map[string]*avro.Schema, seen map[*avro.Schema]bool) {
	if seen[s] {
		return
	}
	seen[s] = true
	if s.Type.IsNamed() {
		out[s.FullName()] = avro.External(s)
	}
	switch s.Type {
	case avro.Record:
		for _, f := range s.Fields {
			collectNamed(f.Type, out, seen)
		}
	case avro.Array:
		collectNamed(s.Items, out, seen)
	case avro.Map:
		collectNamed(s.Values, out, seen)
	case avro.Union:
		for _, b := range s.Branches {
			collectNamed(b, out, seen)
		}
	}
}

// IDByFingerprint returns the id of a schema identity, or 0.
func (s *Store) IDByFingerprint(fp string) (int, error) {
	b, err := s.raw(prefixFingerprint + fp)
	if err != nil || b == nil {
		return 0, err
	}
	id, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, errStore(err)
	}
	return id, nil
}

// MaxID is the highest id assigned so far.
func (s *Store) MaxID() (int, error) {
	b, err := s.raw(keyMaxID)
	if err != nil || b == nil {
		return 0, err
	}
	return strconv.Atoi(string(b))
}

// Versions returns every version of a subject still stored (soft-deleted included), oldest first.
func (s *Store) Versions(subject string) ([]VersionRecord, error) {
	var out []VersionRecord
	err := s.scan(subjectPrefix(subject), func(_ string, v []byte) error {
		var rec VersionRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return errStore(err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// Version returns a subject's version (nil if absent); deleted says whether soft-deleted ones count.
// version -1 means the latest.
func (s *Store) Version(subject string, version int, deleted bool) (*VersionRecord, error) {
	if version == -1 {
		vs, err := s.Versions(subject)
		if err != nil {
			return nil, err
		}
		for i := len(vs) - 1; i >= 0; i-- {
			if deleted || !vs[i].Deleted {
				return &vs[i], nil
			}
		}
		return nil, nil
	}
	b, err := s.raw(versionKey(subject, version))
	if err != nil || b == nil {
		return nil, err
	}
	var rec VersionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errStore(err)
	}
	if rec.Deleted && !deleted {
		return nil, nil
	}
	return &rec, nil
}

// Subjects lists subjects with at least one live version (or any version, with deleted), sorted.
func (s *Store) Subjects(deleted bool) ([]string, error) {
	seen := map[string]bool{}
	err := s.scan(prefixSubject, func(k string, v []byte) error {
		var rec VersionRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return errStore(err)
		}
		if deleted || !rec.Deleted {
			seen[rec.Subject] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, err
}

// Uses lists the subject versions that use a schema id; live says whether only live ones count.
func (s *Store) Uses(id int, live bool) ([]VersionRecord, error) {
	var out []VersionRecord
	err := s.scan(prefixUse+pad(id)+"/", func(k string, v []byte) error {
		if live && string(v) != "1" {
			return nil
		}
		subject, version, err := parseSubjectVersion(strings.TrimPrefix(k, prefixUse+pad(id)+"/"))
		if err != nil {
			return errStore(err)
		}
		out = append(out, VersionRecord{Subject: subject, Version: version, ID: id, Deleted: string(v) != "1"})
		return nil
	})
	return out, err
}

// ReferencedBy lists the subject versions whose schemas refer to subject/version.
func (s *Store) ReferencedBy(subject string, version int) ([]VersionRecord, error) {
	var out []VersionRecord
	p := refByPrefix(subject, version)
	err := s.scan(p, func(k string, _ []byte) error {
		sub, v, err := parseSubjectVersion(strings.TrimPrefix(k, p))
		if err != nil {
			return errStore(err)
		}
		out = append(out, VersionRecord{Subject: sub, Version: v})
		return nil
	})
	return out, err
}

// Config returns the configuration of a subject ("" for global), or nil when none is set.
func (s *Store) Config(subject string) (*ConfigRecord, error) {
	b, err := s.raw(configKey(subject))
	if err != nil || b == nil {
		return nil, err
	}
	var c ConfigRecord
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, errStore(err)
	}
	return &c, nil
}

// Mode returns the mode of a subject ("" for global), or "" when none is set.
func (s *Store) Mode(subject string) (string, error) {
	b, err := s.raw(modeKey(subject))
	if err != nil || b == nil {
		return "", err
	}
	var m ModeRecord
	if err := json.Unmarshal(b, &m); err != nil {
		return "", errStore(err)
	}
	return m.Mode, nil
}

// EffectiveLevel is the compatibility level that applies to a subject ("" for the global one), and
// whether normalize is on: the subject's own configuration over the global one over BACKWARD.
func (s *Store) EffectiveLevel(subject string) (avro.Level, bool, error) {
	level, normalize := avro.Backward, false
	scopes := []string{""}
	if subject != "" {
		scopes = append(scopes, subject)
	}
	for _, scope := range scopes {
		c, err := s.Config(scope)
		if err != nil {
			return "", false, err
		}
		if c == nil {
			continue
		}
		if l, ok := avro.ParseLevel(c.Compatibility); ok {
			level = l
		}
		if c.Normalize != nil {
			normalize = *c.Normalize
		}
	}
	return level, normalize, nil
}

// EffectiveMode is the mode that applies to a subject.
func (s *Store) EffectiveMode(subject string) (string, error) {
	if subject != "" {
		m, err := s.Mode(subject)
		if err != nil || m != "" {
			return m, err
		}
	}
	m, err := s.Mode("")
	if err != nil || m != "" {
		return m, err
	}
	return "READWRITE", nil
}
