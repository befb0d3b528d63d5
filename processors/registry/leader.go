package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/minipipe/minipipe/internal/avro"
)

// event is one record to append to the registry topic; a nil value is a tombstone.
type event struct {
	key   string
	value []byte
	// claim, on a schema record, is the id it claims for the fingerprint: appended on its own first, and
	// the rest only once every instance's store will have taken it.
	claim *SchemaRecord
}

// handle runs on the instance that owns the command partition: it decides the outcome of a write against
// a store that has caught up with everything written before, appends the resulting records and a reply in
// one batch, and waits until its own store has applied them so that the next command sees them. Replaying
// a command after a crash is harmless: a registration finds its schema already there, a deletion its target
// already gone.
func (r *Registry) handle(gctx goka.Context, msg interface{}) {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	var cmd Command
	if err := json.Unmarshal(msg.([]byte), &cmd); err != nil {
		r.log.Warn("skipping malformed registry command", "offset", gctx.Offset(), "error", err)
		return
	}
	if time.Now().After(cmd.Deadline) {
		r.log.Info("skipping expired registry command", "op", cmd.Op, "subject", cmd.Subject, "request", cmd.Request)
		return
	}
	ctx, cancel := context.WithDeadline(gctx.Context(), cmd.Deadline)
	defer cancel()
	if err := r.catchUp(ctx); err != nil {
		r.log.Warn("registry store did not catch up; the request will time out", "error", err, "request", cmd.Request)
		return
	}
	var events []event
	var result any
	var rerr error
	for attempt := 1; ; attempt++ {
		events, result, rerr = r.decide(cmd)
		if rerr != nil || len(events) == 0 || events[0].claim == nil {
			break
		}
		// A new id: claimed alone, then checked. Another owner overlapping this one (a rebalance, a frozen
		// instance waking up) may have claimed the id, or another id for the schema, first; every store
		// keeps the first claim, and this owner decides again on what it now sees.
		claim := events[0].claim
		last, err := r.append(events[:1])
		if err == nil {
			err = r.waitApplied(ctx, last)
		}
		if err != nil {
			r.log.Error("registry write failed; the request will time out", "error", err, "request", cmd.Request)
			return
		}
		if rec, err := r.store.SchemaByID(claim.ID); err == nil && rec != nil && rec.Fingerprint == claim.Fingerprint {
			// The id holds. Decide the rest (the version) again on the store as it is now, so that a version
			// another owner wrote meanwhile is seen rather than overwritten.
			continue
		}
		r.log.Warn("another instance claimed the schema id first; deciding again", "id", claim.ID, "attempt", attempt)
		if attempt >= 5 {
			rerr = errStore(fmt.Errorf("could not claim a schema id: other instances claimed them first %d times", attempt))
			break
		}
	}
	status, body := 200, []byte(nil)
	if rerr != nil {
		e := AsError(rerr)
		status = e.Status
		body, _ = json.Marshal(e)
		events = nil
	} else {
		body, _ = json.Marshal(result)
	}
	if len(events) > 0 {
		events = append(events, auditEvent(cmd, events, body))
	}
	rep, _ := json.Marshal(Reply{Status: status, Body: body})
	events = append(events, event{key: prefixReply + cmd.Request, value: rep}, event{key: prefixReply + cmd.Request})
	last, err := r.append(events)
	if err != nil {
		r.log.Error("registry write failed; the request will time out", "error", err, "request", cmd.Request)
		return
	}
	if err := r.waitApplied(ctx, last); err != nil {
		r.log.Warn("registry store slow to apply its own write", "error", err)
	}
}

// auditEvent is the audit record of a command that changed the registry.
func auditEvent(cmd Command, events []event, result []byte) event {
	now := time.Now().UTC()
	a := AuditRecord{Time: now, Principal: cmd.Principal, Op: cmd.Op, Subject: cmd.Subject, Request: cmd.Request, Result: result,
		Version: cmd.Version, Permanent: cmd.Permanent, Mode: cmd.Mode}
	if a.Principal == "" {
		a.Principal = Anonymous
	}
	if cmd.Config != nil {
		a.Compatibility = cmd.Config.Compatibility
	}
	for _, e := range events {
		a.Changes = append(a.Changes, e.key)
	}
	return event{key: auditKey(now, cmd.Request), value: mustJSON(a)}
}

// catchUp waits until the local store has applied every record in the registry topic.
func (r *Registry) catchUp(ctx context.Context) error {
	hwm, err := r.client.GetOffset(r.cfg.Topic, 0, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	return r.waitApplied(ctx, hwm-1)
}

func (r *Registry) waitApplied(ctx context.Context, offset int64) error {
	for {
		applied, ch := r.store.appliedCh()
		if applied >= offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("store at offset %d, waiting for %d: %w", applied, offset, ctx.Err())
		}
	}
}

// append writes the events in order to the registry topic and returns the offset of the last one.
func (r *Registry) append(events []event) (int64, error) {
	msgs := make([]*sarama.ProducerMessage, len(events))
	for i, e := range events {
		m := &sarama.ProducerMessage{Topic: r.cfg.Topic, Partition: 0, Key: sarama.StringEncoder(e.key)}
		if e.value != nil {
			m.Value = sarama.ByteEncoder(e.value)
		}
		msgs[i] = m
	}
	if err := r.producer.SendMessages(msgs); err != nil {
		return 0, err
	}
	var last int64 = -1
	for _, m := range msgs {
		if m.Offset > last {
			last = m.Offset
		}
	}
	return last, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// decide computes the records a command appends and the result it returns.
func (r *Registry) decide(cmd Command) ([]event, any, error) {
	if cmd.Subject != "" && !validSubject(cmd.Subject) {
		return nil, nil, errInvalidSubject(cmd.Subject)
	}
	switch cmd.Op {
	case opRegister:
		return r.decideRegister(cmd)
	case opDeleteSubject:
		return r.decideDeleteSubject(cmd)
	case opDeleteVersion:
		return r.decideDeleteVersion(cmd)
	case opSetConfig:
		if cmd.Config == nil {
			return nil, nil, errInvalidCompatibility("")
		}
		c := *cmd.Config
		if c.Compatibility != "" {
			l, ok := avro.ParseLevel(c.Compatibility)
			if !ok {
				return nil, nil, errInvalidCompatibility(c.Compatibility)
			}
			c.Compatibility = string(l)
		}
		if old, err := r.store.Config(cmd.Subject); err != nil {
			return nil, nil, err
		} else if old != nil {
			if c.Compatibility == "" {
				c.Compatibility = old.Compatibility
			}
			if c.Normalize == nil {
				c.Normalize = old.Normalize
			}
		}
		return []event{{key: configKey(cmd.Subject), value: mustJSON(c)}}, c, nil
	case opDeleteConfig:
		old, err := r.store.Config(cmd.Subject)
		if err != nil {
			return nil, nil, err
		}
		if old == nil {
			if cmd.Subject == "" {
				return nil, ConfigRecord{Compatibility: string(avro.Backward)}, nil
			}
			return nil, nil, errSubjectNotFound(cmd.Subject)
		}
		return []event{{key: configKey(cmd.Subject)}}, old, nil
	case opSetMode:
		mode := strings.ToUpper(cmd.Mode)
		switch mode {
		case "READWRITE", "READONLY", "READONLY_OVERRIDE":
		case "IMPORT":
			// Confluent allows IMPORT only on an empty registry (or subject) unless forced.
			if !cmd.Force {
				var subjects []string
				var err error
				if cmd.Subject == "" {
					subjects, err = r.store.Subjects(true)
				} else if vs, e := r.store.Versions(cmd.Subject); e != nil {
					err = e
				} else if len(vs) > 0 {
					subjects = []string{cmd.Subject}
				}
				if err != nil {
					return nil, nil, err
				}
				if len(subjects) > 0 {
					return nil, nil, errOperationNotPermitted("Cannot import since found existing subjects")
				}
			}
		default:
			return nil, nil, errInvalidMode(cmd.Mode)
		}
		return []event{{key: modeKey(cmd.Subject), value: mustJSON(ModeRecord{Mode: mode})}}, ModeRecord{Mode: mode}, nil
	case opDeleteMode:
		old, err := r.store.Mode(cmd.Subject)
		if err != nil {
			return nil, nil, err
		}
		if old == "" {
			return nil, nil, errSubjectNotFound(cmd.Subject)
		}
		return []event{{key: modeKey(cmd.Subject)}}, ModeRecord{Mode: old}, nil
	}
	return nil, nil, errBadRequest("unknown registry operation " + cmd.Op)
}

func (r *Registry) checkWritable(subject string) error {
	mode, err := r.store.EffectiveMode(subject)
	if err != nil {
		return err
	}
	if mode == "READONLY" || mode == "READONLY_OVERRIDE" {
		return errOperationNotPermitted(fmt.Sprintf("Subject %s is in read-only mode", subject))
	}
	return nil
}

func (r *Registry) decideRegister(cmd Command) ([]event, any, error) {
	if err := r.checkWritable(cmd.Subject); err != nil {
		return nil, nil, err
	}
	mode, err := r.store.EffectiveMode(cmd.Subject)
	if err != nil {
		return nil, nil, err
	}
	importing := mode == "IMPORT"
	if cmd.ID != 0 && !importing {
		return nil, nil, errOperationNotPermitted(fmt.Sprintf("Overwrite new schema with id %d is not permitted.", cmd.ID))
	}
	p, err := r.Prepare(cmd.Schema, cmd.SchemaType, cmd.References, cmd.Normalize, !importing)
	if err != nil {
		return nil, nil, err
	}
	versions, err := r.store.Versions(cmd.Subject)
	if err != nil {
		return nil, nil, err
	}
	id, err := r.store.IDByFingerprint(p.Fingerprint)
	if err != nil {
		return nil, nil, err
	}
	if id != 0 {
		for _, v := range versions {
			if v.ID == id && !v.Deleted {
				return nil, Registered{ID: id, Version: v.Version}, nil
			}
		}
	}
	var events []event
	if importing {
		if cmd.ID <= 0 {
			return nil, nil, errOperationNotPermitted("Registering a schema in IMPORT mode needs its id")
		}
		if id != 0 && id != cmd.ID {
			return nil, nil, errIDMismatch(fmt.Sprintf("Schema already registered with id %d instead of input id %d", id, cmd.ID))
		}
		if other, err := r.store.SchemaByID(cmd.ID); err != nil {
			return nil, nil, err
		} else if other != nil && other.Fingerprint != p.Fingerprint {
			return nil, nil, errIDMismatch(fmt.Sprintf("Overwrite new schema with id %d is not permitted.", cmd.ID))
		}
		id = cmd.ID
	} else {
		// Compatibility against the live versions, oldest first.
		level, _, err := r.store.EffectiveLevel(cmd.Subject)
		if err != nil {
			return nil, nil, err
		}
		if msgs, err := r.checkAgainst(level, p.Schema, versions, nil); err != nil {
			return nil, nil, err
		} else if len(msgs) > 0 {
			return nil, nil, errIncompatible(cmd.Subject, msgs)
		}
	}
	if id == 0 {
		maxID, err := r.store.MaxID()
		if err != nil {
			return nil, nil, err
		}
		id = maxID + 1
	}
	if rec, err := r.store.SchemaByID(id); err != nil {
		return nil, nil, err
	} else if rec == nil {
		claim := SchemaRecord{ID: id, Schema: p.Text, References: p.References, Fingerprint: p.Fingerprint}
		nonce := make([]byte, 8)
		_, _ = rand.Read(nonce)
		events = append(events, event{key: claimKey(id, hex.EncodeToString(nonce)), value: mustJSON(claim), claim: &claim})
	}
	version := 1
	if len(versions) > 0 {
		version = versions[len(versions)-1].Version + 1
	}
	if importing && cmd.Version > 0 {
		if cmd.Version < version {
			return nil, nil, errOperationNotPermitted(fmt.Sprintf("Version %d of subject %s already exists", cmd.Version, cmd.Subject))
		}
		version = cmd.Version
	}
	events = append(events, event{key: versionKey(cmd.Subject, version), value: mustJSON(VersionRecord{Subject: cmd.Subject, Version: version, ID: id})})
	return events, Registered{ID: id, Version: version}, nil
}

// checkAgainst checks a schema against a subject's live versions at a level; only, when not nil, limits
// the check to that one version. It returns Confluent's verbose messages; none means compatible.
func (r *Registry) checkAgainst(level avro.Level, candidate *avro.Schema, versions []VersionRecord, only *VersionRecord) ([]string, error) {
	var targets []VersionRecord
	if only != nil {
		targets = []VersionRecord{*only}
	} else {
		for _, v := range versions {
			if !v.Deleted {
				targets = append(targets, v)
			}
		}
	}
	if level == avro.None || len(targets) == 0 {
		return nil, nil
	}
	if !level.Transitive() {
		targets = targets[len(targets)-1:]
	}
	var msgs []string
	for i := len(targets) - 1; i >= 0; i-- {
		old, _, err := r.store.Parsed(targets[i].ID)
		if err != nil {
			return nil, err
		}
		found := avro.CheckLevel(level, candidate, []*avro.Schema{old})
		if len(found) > 0 {
			msgs = append(msgs, found...)
			msgs = append(msgs, fmt.Sprintf("{oldSchemaVersion: %d}", targets[i].Version),
				fmt.Sprintf("{oldSchema: '%s'}", old.Canonical()))
		}
	}
	if len(msgs) > 0 {
		msgs = append(msgs, fmt.Sprintf("{compatibility: '%s'}", level))
	}
	return msgs, nil
}

func (r *Registry) referenced(subject string, version int) error {
	refs, err := r.store.ReferencedBy(subject, version)
	if err != nil {
		return err
	}
	if len(refs) > 0 {
		return errReferenceExists(fmt.Sprintf("One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=%s,version=%d}.", subject, version))
	}
	return nil
}

func (r *Registry) decideDeleteSubject(cmd Command) ([]event, any, error) {
	if err := r.checkWritable(cmd.Subject); err != nil {
		return nil, nil, err
	}
	versions, err := r.store.Versions(cmd.Subject)
	if err != nil {
		return nil, nil, err
	}
	if len(versions) == 0 {
		return nil, nil, errSubjectNotFound(cmd.Subject)
	}
	live := 0
	for _, v := range versions {
		if !v.Deleted {
			live++
		}
	}
	var events []event
	deleted := []int{}
	if !cmd.Permanent {
		if live == 0 {
			return nil, nil, errSubjectSoftDeleted(cmd.Subject)
		}
		for _, v := range versions {
			if v.Deleted {
				continue
			}
			if err := r.referenced(cmd.Subject, v.Version); err != nil {
				return nil, nil, err
			}
			v.Deleted = true
			events = append(events, event{key: versionKey(cmd.Subject, v.Version), value: mustJSON(v)})
			deleted = append(deleted, v.Version)
		}
		return events, deleted, nil
	}
	if live > 0 {
		return nil, nil, errSubjectNotSoftDeleted(cmd.Subject)
	}
	for _, v := range versions {
		if err := r.referenced(cmd.Subject, v.Version); err != nil {
			return nil, nil, err
		}
		events = append(events, event{key: versionKey(cmd.Subject, v.Version)})
		deleted = append(deleted, v.Version)
	}
	// A permanently deleted subject also loses its own configuration and mode.
	if c, err := r.store.Config(cmd.Subject); err == nil && c != nil {
		events = append(events, event{key: configKey(cmd.Subject)})
	}
	if m, err := r.store.Mode(cmd.Subject); err == nil && m != "" {
		events = append(events, event{key: modeKey(cmd.Subject)})
	}
	return events, deleted, nil
}

func (r *Registry) decideDeleteVersion(cmd Command) ([]event, any, error) {
	if err := r.checkWritable(cmd.Subject); err != nil {
		return nil, nil, err
	}
	versions, err := r.store.Versions(cmd.Subject)
	if err != nil {
		return nil, nil, err
	}
	// As in Confluent, soft-deleted versions count here: deleting one again is a 40406, not a 40401.
	if len(versions) == 0 {
		return nil, nil, errSubjectNotFound(cmd.Subject)
	}
	var target *VersionRecord
	if cmd.Latest {
		target = &versions[len(versions)-1]
	} else {
		for i := range versions {
			if versions[i].Version == cmd.Version {
				target = &versions[i]
			}
		}
	}
	if target == nil {
		return nil, nil, errVersionNotFound(fmt.Sprint(cmd.Version))
	}
	if err := r.referenced(cmd.Subject, target.Version); err != nil {
		return nil, nil, err
	}
	if !cmd.Permanent {
		if target.Deleted {
			return nil, nil, errVersionSoftDeleted(cmd.Subject, target.Version)
		}
		v := *target
		v.Deleted = true
		return []event{{key: versionKey(cmd.Subject, v.Version), value: mustJSON(v)}}, v.Version, nil
	}
	if !target.Deleted {
		return nil, nil, errVersionNotSoftDeleted(cmd.Subject, target.Version)
	}
	return []event{{key: versionKey(cmd.Subject, target.Version)}}, target.Version, nil
}
