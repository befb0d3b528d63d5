// Package manifest is the write-ahead manifest of the exactly-once commit protocol. Each owner of a commit
// partition appends records to its own directory of the warehouse, one record per file, created
// exclusively: record N can be written once, so a zombie that lost its partition and tries to commit after
// the new owner has claimed it fails instead of committing. Records are framed and checksummed; a
// checkpoint folds everything before it into one state so that recovery reads the latest checkpoint and
// the few records after it, whatever the size of the tables.
//
// Every record carries its writer's epoch, and a record of an epoch older than the last claim is ignored
// wherever it lands. Compaction removes old record files, so a zombie frozen long enough can find its next
// number free again and write there; that record lies before the latest checkpoint, which readers start
// from, and its epoch is stale, so it never counts. What keeps such a zombie from publishing a file is its
// staging directory, which the next owner removes when it claims the partition (see processors/commit).
package manifest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minipipe/minipipe/sinks/fs"
)

// Kind is a record's kind.
type Kind uint8

// The record kinds.
const (
	// Claim opens an owner's epoch: written first by every new owner, it fences out the previous one.
	Claim Kind = 1
	// Intent lists the files of a commit, written after the staging files are durable and before any is
	// published.
	Intent Kind = 2
	// Committed marks an intent as published.
	Committed Kind = 3
	// Abort marks an intent as abandoned (its staging files were lost; its records are redone).
	Abort Kind = 4
	// Checkpoint holds the whole state as of its sequence number.
	Checkpoint Kind = 5
	// Applied marks an intent's catalog changes as applied to the metastore.
	Applied Kind = 6
)

func (k Kind) String() string {
	switch k {
	case Claim:
		return "claim"
	case Intent:
		return "intent"
	case Committed:
		return "committed"
	case Abort:
		return "abort"
	case Checkpoint:
		return "checkpoint"
	case Applied:
		return "applied"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Record is one manifest record.
type Record struct {
	Seq   uint64    `json:"-"`
	Kind  Kind      `json:"-"`
	Epoch uint64    `json:"epoch"`
	Owner string    `json:"owner,omitempty"`
	Time  time.Time `json:"time"`

	// Intent
	Files   []File          `json:"files,omitempty"`
	Catalog []CatalogChange `json:"catalog,omitempty"`
	// Compaction, on an intent, says its Files replace files of one table partition: they hold the same
	// rows, in a directory of their own that the partition then points at.
	Compaction *Compaction `json:"compaction,omitempty"`
	// Committed, Abort, Applied: the intent they settle.
	Ref uint64 `json:"ref,omitempty"`
	// Applied: more intents whose catalog changes were applied together.
	Refs []uint64 `json:"refs,omitempty"`
	// Checkpoint
	State *State `json:"state,omitempty"`
	// Claim: the Kafka cluster and the pipeline the owner belongs to.
	Cluster  string `json:"cluster,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
}

// File is a Parquet file of a commit.
type File struct {
	Table      string        `json:"table"`
	Generation int           `json:"gen"`
	Key        string        `json:"key"`  // the table partition's key, e.g. connect_test@1/dt=2026-11-25
	Path       string        `json:"path"` // partition path under the table, e.g. dt=2026-11-25
	Staging    string        `json:"staging"`
	Final      string        `json:"final"`
	Rows       int64         `json:"rows"`
	Bytes      int64         `json:"bytes"`
	SchemaID   int           `json:"schema_id"`
	Sources    []SourceRange `json:"sources"`
	Partitions [][2]string   `json:"partitions,omitempty"` // partition column values, in order
}

// SourceRange is the span of a source partition's offsets a file holds.
type SourceRange struct {
	Source string `json:"source"` // topic:topic-id:partition
	First  int64  `json:"first"`
	Last   int64  `json:"last"`
	Count  int64  `json:"count"`
}

// Compaction is a rewrite of a table partition's files (minipipe compact on a Hive table).
type Compaction struct {
	Key     string `json:"key"`
	Request string `json:"request"`
	// Dir is where the partition's files are from now on: the new files, and every later commit's.
	Dir string `json:"dir"`
	// From is the directory the replaced files are in, Replaced their names, with their rows and bytes.
	From          string   `json:"from"`
	Replaced      []string `json:"replaced"`
	ReplacedRows  int64    `json:"replaced_rows"`
	ReplacedBytes int64    `json:"replaced_bytes"`
	// Success says the partition was complete (a _SUCCESS marker): Dir gets one too.
	Success bool `json:"success,omitempty"`
}

// recentCompactions is how many compaction requests a table partition remembers: one delivered again after
// later ones is still recognised as done.
const recentCompactions = 8

// LastCompaction is what a table partition remembers of its last compaction. The files it replaced are
// whatever else lies under the partition's path: they stay for queries that started before, until minipipe
// compact removes them once the metastore moved (AppliedAt) and its grace period passed.
type LastCompaction struct {
	Seq       uint64    `json:"seq"` // of its intent
	Request   string    `json:"request"`
	Time      time.Time `json:"time"`
	AppliedAt time.Time `json:"applied_at,omitempty"` // when the metastore partition moved (its commit's, without a catalog)
	From      string    `json:"from"`
	// What it replaced (files, rows, bytes) and with what (files, bytes).
	Replaced      int   `json:"replaced"`
	Rows          int64 `json:"rows"`
	ReplacedBytes int64 `json:"replaced_bytes"`
	Files         int   `json:"files"`
	Bytes         int64 `json:"bytes"`
}

// CatalogChange is a metastore change a commit needs (applied after publishing, in order, until done).
type CatalogChange struct {
	Op         string            `json:"op"` // create_table, add_columns, add_partition
	Table      string            `json:"table"`
	Generation int               `json:"gen,omitempty"`
	Location   string            `json:"location,omitempty"`
	Columns    json.RawMessage   `json:"columns,omitempty"`
	Partition  map[string]string `json:"partition,omitempty"`
	SchemaID   int               `json:"schema_id,omitempty"`
	// File is the committed file a change registers (Iceberg: a data file of the table's next snapshot).
	File *File `json:"file,omitempty"`
	// Seq and Stream are set when the change is applied, not recorded: the sequence number of the intent
	// it belongs to and the manifest it is in (rows topic and partition), so that a catalog can tell a
	// change it already applied (an Iceberg snapshot's summary and the table's properties carry them).
	Seq    uint64 `json:"-"`
	Stream string `json:"-"`
}

// KeyState is what is committed for one table partition.
type KeyState struct {
	Table      string           `json:"table"`
	Generation int              `json:"gen"`
	Path       string           `json:"path"`
	Partitions [][2]string      `json:"partitions,omitempty"`
	Files      int64            `json:"files"`
	Rows       int64            `json:"rows"`
	Bytes      int64            `json:"bytes"`
	SchemaIDs  []int            `json:"schema_ids,omitempty"`
	HWM        map[string]int64 `json:"hwm"` // source → highest offset committed
	LastCommit time.Time        `json:"last_commit"`
	// Dir is the directory the partition's files are in when a compaction moved them from the partition's
	// path under the table (empty: that path).
	Dir            string          `json:"dir,omitempty"`
	LastCompaction *LastCompaction `json:"last_compaction,omitempty"`
	// Compactions are the last requests done (recentCompactions of them, oldest first).
	Compactions []string `json:"compactions,omitempty"`
}

// State is an owner's view of its partition: committed keys with their high-water marks, and intents not
// yet settled.
type State struct {
	Epoch uint64 `json:"epoch"`
	// Cluster and Pipeline are those of the latest claim.
	Cluster  string               `json:"cluster,omitempty"`
	Pipeline string               `json:"pipeline,omitempty"`
	Stale    int                  `json:"-"` // records of an older epoch than their claim's, ignored
	Keys     map[string]*KeyState `json:"keys"`
	Pending  map[uint64]*Record   `json:"pending,omitempty"` // intents without a Committed or Abort
	// Unapplied are committed intents whose catalog changes are not applied yet, oldest first.
	Unapplied []uint64 `json:"unapplied,omitempty"`
	// Catalog holds the catalog changes of the unapplied intents.
	Catalog map[uint64][]CatalogChange `json:"catalog,omitempty"`
	// Relocating are the compactions whose metastore move is not applied yet: intent → key.
	Relocating map[uint64]string `json:"relocating,omitempty"`
}

// NewState is an empty state.
func NewState() *State {
	return &State{Keys: map[string]*KeyState{}, Pending: map[uint64]*Record{}, Catalog: map[uint64][]CatalogChange{}, Relocating: map[uint64]string{}}
}

// HWM returns the highest committed offset of source in key, or -1.
func (s *State) HWM(key, source string) int64 {
	if k := s.Keys[key]; k != nil {
		if v, ok := k.HWM[source]; ok {
			return v
		}
	}
	return -1
}

// Apply folds a record into the state. A record written in an epoch older than the state's (by an owner
// that lost the partition) changes nothing.
func (s *State) Apply(r *Record) {
	if r.Kind != Checkpoint && r.Epoch < s.Epoch {
		s.Stale++
		return
	}
	switch r.Kind {
	case Claim:
		s.Epoch = r.Epoch
		if r.Cluster != "" {
			s.Cluster = r.Cluster
		}
		if r.Pipeline != "" {
			s.Pipeline = r.Pipeline
		}
	case Intent:
		s.Pending[r.Seq] = r
	case Committed:
		in := s.Pending[r.Ref]
		delete(s.Pending, r.Ref)
		if in == nil {
			return
		}
		if c := in.Compaction; c != nil {
			s.applyCompaction(r, in)
		}
		for _, f := range in.Files {
			if in.Compaction != nil {
				break
			}
			k := s.Keys[f.Key]
			if k == nil {
				k = &KeyState{Table: f.Table, Generation: f.Generation, Path: f.Path, Partitions: f.Partitions, HWM: map[string]int64{}}
				s.Keys[f.Key] = k
			}
			k.Files++
			k.Rows += f.Rows
			k.Bytes += f.Bytes
			if !containsInt(k.SchemaIDs, f.SchemaID) {
				k.SchemaIDs = append(k.SchemaIDs, f.SchemaID)
				sort.Ints(k.SchemaIDs)
			}
			for _, src := range f.Sources {
				if cur, ok := k.HWM[src.Source]; !ok || src.Last > cur {
					k.HWM[src.Source] = src.Last
				}
			}
			if r.Time.After(k.LastCommit) {
				k.LastCommit = r.Time
			}
		}
		if len(in.Catalog) > 0 {
			s.Unapplied = append(s.Unapplied, r.Ref)
			s.Catalog[r.Ref] = in.Catalog
		}
	case Abort:
		delete(s.Pending, r.Ref)
	case Applied:
		done := map[uint64]bool{r.Ref: true}
		for _, ref := range r.Refs {
			done[ref] = true
		}
		for ref := range done {
			if key, ok := s.Relocating[ref]; ok {
				if k := s.Keys[key]; k != nil && k.LastCompaction != nil && k.LastCompaction.Seq == ref {
					k.LastCompaction.AppliedAt = r.Time
				}
				delete(s.Relocating, ref)
			}
		}
		kept := s.Unapplied[:0]
		for _, ref := range s.Unapplied {
			if done[ref] {
				delete(s.Catalog, ref)
				continue
			}
			kept = append(kept, ref)
		}
		s.Unapplied = kept
	case Checkpoint:
		if r.State != nil && r.State.Epoch >= s.Epoch {
			*s = *r.State.clone()
		} else {
			s.Stale++
		}
	}
}

// applyCompaction folds a committed compaction into its key: the same rows and high-water marks, other files.
func (s *State) applyCompaction(r, in *Record) {
	c := in.Compaction
	k := s.Keys[c.Key]
	if k == nil {
		return // nothing committed to compact: such an intent is never written
	}
	var bytes int64
	for _, f := range in.Files {
		bytes += f.Bytes
	}
	k.Files += int64(len(in.Files)) - int64(len(c.Replaced))
	k.Bytes += bytes - c.ReplacedBytes
	k.Dir = c.Dir
	k.LastCompaction = &LastCompaction{Seq: r.Ref, Request: c.Request, Time: r.Time, From: c.From, Replaced: len(c.Replaced),
		Rows: c.ReplacedRows, ReplacedBytes: c.ReplacedBytes, Files: len(in.Files), Bytes: bytes}
	if len(in.Catalog) > 0 {
		s.Relocating[r.Ref] = c.Key
	} else {
		k.LastCompaction.AppliedAt = r.Time // no metastore to move
	}
	k.Compactions = append(k.Compactions, c.Request)
	if n := len(k.Compactions); n > recentCompactions {
		k.Compactions = append([]string(nil), k.Compactions[n-recentCompactions:]...)
	}
}

// Compacted reports whether the table partition has done the compaction request.
func (k *KeyState) Compacted(request string) bool {
	for _, r := range k.Compactions {
		if r == request {
			return true
		}
	}
	return false
}

// compacting reports whether the state knows compactions, which readers before them would misread.
func (s *State) compacting() bool {
	if len(s.Relocating) > 0 {
		return true
	}
	for _, k := range s.Keys {
		if k.Dir != "" || k.LastCompaction != nil {
			return true
		}
	}
	return false
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (s *State) clone() *State {
	b, _ := json.Marshal(s)
	out := NewState()
	_ = json.Unmarshal(b, out)
	if out.Keys == nil {
		out.Keys = map[string]*KeyState{}
	}
	if out.Pending == nil {
		out.Pending = map[uint64]*Record{}
	}
	if out.Catalog == nil {
		out.Catalog = map[uint64][]CatalogChange{}
	}
	if out.Relocating == nil {
		out.Relocating = map[uint64]string{}
	}
	for seq, r := range out.Pending {
		r.Seq, r.Kind = seq, Intent
	}
	return out
}

// --- framing ----------------------------------------------------------------------------------------------

var magic = [4]byte{'M', 'P', 'M', 'F'}

const (
	version = 1
	// versionCompaction frames the records of a manifest with compactions (their intents, and checkpoints of a
	// state that has them): minipipe before them refuses such a record (unknown version) instead of misreading
	// a compaction as a commit of the same rows again and losing where the partition's files are.
	versionCompaction = 2
	headerLen         = 4 + 1 + 1 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is a record whose frame or checksum is wrong.
var ErrCorrupt = errors.New("manifest record is corrupt")

// Encode frames a record: magic, version, kind, payload length, JSON payload, CRC-32C of all before it.
func Encode(r *Record) ([]byte, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	v := byte(version)
	if r.Compaction != nil || r.State != nil && r.State.compacting() {
		v = versionCompaction
	}
	b := make([]byte, 0, headerLen+len(payload)+4)
	b = append(b, magic[:]...)
	b = append(b, v, byte(r.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Decode parses one framed record.
func Decode(b []byte) (*Record, error) {
	if len(b) < headerLen+4 || [4]byte(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	if b[4] != version && b[4] != versionCompaction {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, b[4])
	}
	n := int(binary.BigEndian.Uint32(b[6:10]))
	if n != len(b)-headerLen-4 {
		return nil, fmt.Errorf("%w: length %d of %d", ErrCorrupt, n, len(b)-headerLen-4)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r := &Record{Kind: Kind(b[5])}
	if err := json.Unmarshal(b[headerLen:len(b)-4], r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}

// --- the log ----------------------------------------------------------------------------------------------

// ErrFenced means another owner wrote the sequence number this one wanted: this owner lost its partition.
var ErrFenced = errors.New("manifest: fenced by a newer owner")

// Log is one partition's manifest directory.
type Log struct {
	fs   fs.FS
	dir  string
	next uint64
}

const suffix = ".mf"

func recordName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, suffix) }

// Load reads the manifest of dir: the state as of its last record, and the sequence number the next record
// takes. Reading starts at the latest checkpoint.
func Load(f fs.FS, dir string) (*Log, *State, error) {
	l := &Log{fs: f, dir: dir, next: 1}
	entries, err := f.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return l, NewState(), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", dir, err)
	}
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name, suffix)
		if !ok || e.IsDir {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	st := NewState()
	if len(seqs) == 0 {
		return l, st, nil
	}
	l.next = seqs[len(seqs)-1] + 1
	// Find the latest checkpoint by reading backwards until one is found.
	start := 0
	records := make(map[uint64]*Record, len(seqs))
	for i := len(seqs) - 1; i >= 0; i-- {
		r, err := l.readSettled(seqs[i])
		if err != nil {
			return nil, nil, err
		}
		if r == nil {
			continue // void: torn by a writer that died
		}
		records[seqs[i]] = r
		if r.Kind == Checkpoint {
			start = i
			break
		}
	}
	for _, seq := range seqs[start:] {
		if r := records[seq]; r != nil {
			st.Apply(r)
		}
	}
	return l, st, nil
}

// readSettled reads a record; one that does not decode is settled first on backends where a writer that
// died can leave a record torn (HDFS): once nobody can complete it, a record still torn is void (nil).
func (l *Log) readSettled(seq uint64) (*Record, error) {
	r, err := l.read(seq)
	if err == nil {
		return r, nil
	}
	settler, ok := l.fs.(fs.Settler)
	if !ok || !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if serr := settler.Settle(fs.Join(l.dir, recordName(seq))); serr != nil {
		return nil, fmt.Errorf("%w (settling it: %v)", err, serr)
	}
	r, err = l.read(seq)
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, ErrCorrupt), errors.Is(err, fs.ErrNotExist):
		return nil, nil
	}
	return nil, err
}

func (l *Log) read(seq uint64) (*Record, error) {
	b, err := l.fs.ReadFile(fs.Join(l.dir, recordName(seq)))
	if err != nil {
		return nil, fmt.Errorf("manifest %s record %d: %w", l.dir, seq, err)
	}
	r, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s record %d: %w", l.dir, seq, err)
	}
	r.Seq = seq
	return r, nil
}

// Newer reports whether the directory holds a record numbered above seq.
func (l *Log) Newer(seq uint64) (bool, error) {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return false, fmt.Errorf("manifest %s: %w", l.dir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name, suffix)
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil && n > seq {
			return true, nil
		}
	}
	return false, nil
}

// Next is the sequence number the next record will take.
func (l *Log) Next() uint64 { return l.next }

// Append writes the record as the next one; ErrFenced if that number is taken.
func (l *Log) Append(r *Record) error {
	r.Seq = l.next
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	b, err := Encode(r)
	if err != nil {
		return err
	}
	if err := l.fs.CreateExclusive(fs.Join(l.dir, recordName(r.Seq)), b); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: record %d of %s exists", ErrFenced, r.Seq, l.dir)
		}
		return fmt.Errorf("manifest append: %w", err)
	}
	l.next++
	return nil
}

// Compact writes a checkpoint of state and removes the records before the previous checkpoint (one older
// checkpoint stays, so that a reader racing the compaction still finds a complete suffix).
func (l *Log) Compact(st *State, epoch uint64, owner string) error {
	cp := &Record{Kind: Checkpoint, Epoch: epoch, Owner: owner, State: st.clone()}
	if err := l.Append(cp); err != nil {
		return err
	}
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var prevCheckpoint uint64
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name, suffix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil || seq >= cp.Seq {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i := len(seqs) - 1; i >= 0; i-- {
		if r, err := l.read(seqs[i]); err == nil && r.Kind == Checkpoint {
			prevCheckpoint = seqs[i]
			break
		}
	}
	for _, seq := range seqs {
		if seq >= prevCheckpoint {
			break
		}
		if err := l.fs.Remove(fs.Join(l.dir, recordName(seq))); err != nil {
			return err
		}
	}
	return nil
}
