package ingest

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/acks"
	"github.com/minipipe/minipipe/processors/bucket"
	"github.com/minipipe/minipipe/processors/validate"
	"github.com/minipipe/minipipe/state"
)

// The three steps keep their state per source partition in the processor's goka group table (state.Tables):
//
//	i/<key>\x00<index>       ingest: a record of an Idempotency-Key request → its offset and timestamp
//	t/<ts><key>\x00<index>   ingest: the same, ordered by time, so that expired keys are found by a range scan
//	v/                       validate: validate.Stats
//	w/                       bucket: bucket.Watermark
//	f/<table partition key>  bucket: bucket.File, the open file's boundary state and recent seals
//
// Every change goes to the table topic, and a source record is acknowledged only once the changes made
// while it was processed are in Kafka: state lost with --data-dir is rebuilt from the topic, and what it
// says about offsets below the committed one is complete. Records are grouped in periods (stateFlush): the
// first record of a period is held until the period's changes are in Kafka, which keeps every later one
// from being acknowledged before them.

const (
	prefixIdem = "i/"
	prefixTime = "t/"
	// stateFlush is how long counters and watermarks gather changes before they are written.
	stateFlush = 200 * time.Millisecond
	// sweepEvery is how often expired idempotency keys are removed.
	sweepEvery = time.Minute
)

// partState is one source partition's state. Its methods are called with the part's mu held.
type partState struct {
	st       *state.Partition // nil: the processor keeps no state (unit tests of other parts)
	window   time.Duration
	lateness time.Duration

	stats  validate.Stats
	wm     bucket.Watermark
	dirty  bool
	period *period

	files      map[string]*bucket.File // by table partition key
	dirtyFiles map[string]bool

	lastSweep time.Time
}

// period is the changes made since the last flush, and the record that waits for them.
type period struct {
	q       *acks.Queue
	entry   *acks.Entry
	started time.Time
	mu      sync.Mutex
	pending int
	closed  bool
	err     error
}

func (pd *period) add() {
	pd.mu.Lock()
	pd.pending++
	pd.mu.Unlock()
}

func (pd *period) done(err error) {
	pd.mu.Lock()
	pd.pending--
	if err != nil && pd.err == nil {
		pd.err = err
	}
	release := pd.closed && pd.pending == 0
	pd.mu.Unlock()
	if release {
		pd.q.Release(pd.entry, pd.err)
	}
}

func (pd *period) close() {
	pd.mu.Lock()
	pd.closed = true
	release := pd.pending == 0
	pd.mu.Unlock()
	if release {
		pd.q.Release(pd.entry, pd.err)
	}
}

// loadState reads a partition's state from its store (goka has replayed the table topic into it).
func loadState(st *state.Partition, window, lateness time.Duration) (*partState, error) {
	s := newPartState()
	s.st, s.window, s.lateness = st, window, lateness
	if st == nil {
		return s, nil
	}
	b, err := st.Get(validate.StatsKey)
	if err != nil {
		return nil, err
	}
	// Counters and watermarks that do not parse start over (they are not data); the defaults come back.
	if s.stats, err = validate.DecodeStats(b); err != nil {
		slog.Warn("validation stats unreadable; counting again from here", "table", st.Topic, "partition", st.Partition, "error", err)
	}
	if b, err = st.Get(bucket.WatermarkKey); err != nil {
		return nil, err
	}
	if s.wm, err = bucket.DecodeWatermark(b); err != nil {
		slog.Warn("watermark unreadable; starting it again", "table", st.Topic, "partition", st.Partition, "error", err)
	}
	var bad error
	err = st.Scan(bucket.FilePrefix, func(k, v []byte) bool {
		f, err := bucket.DecodeFile(v)
		if err != nil {
			bad = err // a boundary that does not parse starts a new file: one more file, no row lost
			f = bucket.NewFile()
		}
		s.files[string(k[len(bucket.FilePrefix):])] = f
		return true
	})
	if err != nil {
		return nil, err
	}
	if bad != nil {
		slog.Warn("file boundary state unreadable; those files start again", "table", st.Topic, "partition", st.Partition, "error", bad)
	}
	return s, nil
}

func newPartState() *partState {
	return &partState{stats: validate.NewStats(), wm: bucket.NewWatermark(), lastSweep: time.Now(), files: map[string]*bucket.File{}, dirtyFiles: map[string]bool{}}
}

// file is the bucket step's state of a table partition's file.
func (s *partState) file(key string) *bucket.File {
	f := s.files[key]
	if f == nil {
		f = bucket.NewFile()
		s.files[key] = f
	}
	s.dirtyFiles[key] = true
	return f
}

// writeFiles writes the file states that changed, forgetting seals the committed offset has passed and
// states left with nothing; the writes belong to period pd (nil: no record waits for them).
func (s *partState) writeFiles(committed int64, pd *period) {
	for key, f := range s.files {
		if len(f.Sealed) > 0 && f.Sealed[0] <= committed {
			s.dirtyFiles[key] = true
		}
		if !s.dirtyFiles[key] {
			continue
		}
		delete(s.dirtyFiles, key)
		var v []byte
		if f.Prune(committed) {
			delete(s.files, key)
		} else {
			v = f.Encode()
		}
		if s.st == nil {
			continue
		}
		if pd == nil {
			s.st.Set(bucket.FilePrefix+key, v, func(error) {})
			continue
		}
		pd.add()
		s.st.Set(bucket.FilePrefix+key, v, pd.done)
	}
}

// begin makes e the record the current period's changes hold back, when no period is open.
func (s *partState) begin(q *acks.Queue, e *acks.Entry, now time.Time) {
	if s.st == nil || s.period != nil {
		return
	}
	q.Hold(e)
	s.period = &period{q: q, entry: e, started: now}
}

// due is how long until the open period is to be flushed (0: none is open).
func (s *partState) due(now time.Time) time.Duration {
	if s.period == nil {
		return 0
	}
	return max(s.period.started.Add(stateFlush).Sub(now), time.Millisecond)
}

// flush writes the counters and the watermark if they changed, and closes the period: its record is
// released once every change of the period is in Kafka.
func (s *partState) flush(committed int64) {
	pd := s.period
	if pd == nil {
		if len(s.dirtyFiles) > 0 {
			s.writeFiles(committed, nil) // seals made by the clock: no record waits for them
		}
		return
	}
	s.writeFiles(committed, pd)
	s.period = nil
	if s.dirty {
		s.dirty = false
		pd.add()
		s.st.Set(validate.StatsKey, s.stats.Encode(), pd.done)
		pd.add()
		s.st.Set(bucket.WatermarkKey, s.wm.Encode(), pd.done)
	}
	pd.close()
}

// set writes one change within the open period.
func (s *partState) set(key string, value []byte) {
	s.period.add()
	s.st.Set(key, value, s.period.done)
}

// idempotency returns a record's Idempotency-Key and index, if it has them.
func idempotency(h goka.Headers) (string, uint64, bool) {
	k, ok := h[kafka.HeaderIdempotencyKey]
	if !ok || len(k) == 0 || len(k) > kafka.MaxIdempotencyKey {
		return "", 0, false
	}
	idx, err := strconv.ParseUint(string(h[kafka.HeaderIdempotencyIndex]), 10, 32)
	if err != nil {
		return "", 0, false
	}
	return string(k), idx, true
}

func idemKey(key string, idx uint64) string {
	b := make([]byte, 0, len(prefixIdem)+len(key)+9)
	b = append(b, prefixIdem...)
	b = append(b, key...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, idx)
	return string(b)
}

func timeKey(ts int64, key string, idx uint64) string {
	b := make([]byte, 0, len(prefixTime)+8+len(key)+9)
	b = append(b, prefixTime...)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = append(b, key...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, idx)
	return string(b)
}

// admit decides whether the record at offset with an Idempotency-Key and index is a repeat: the same key
// and index seen at an earlier offset of this partition less than the window before it. A record that is
// not is remembered. The decision depends only on the partition's records, so a redo decides as the first
// run did: the record seen first is kept, its retries dropped.
func (s *partState) admit(key string, idx uint64, offset int64, ts time.Time) (bool, error) {
	if s.st == nil {
		return false, nil
	}
	k := idemKey(key, idx)
	v, err := s.st.Get(k)
	if err != nil {
		return false, err
	}
	if len(v) == 16 {
		first := int64(binary.BigEndian.Uint64(v))
		firstTS := int64(binary.BigEndian.Uint64(v[8:]))
		if first < offset && ts.UnixMilli()-firstTS <= s.window.Milliseconds() {
			return true, nil
		}
		if first != offset {
			s.set(timeKey(firstTS, key, idx), nil)
		}
		// first == offset: the same record again (a redo). It is written again all the same: the first
		// time's change may have reached the local store and not Kafka.
	}
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(offset))
	val = binary.BigEndian.AppendUint64(val, uint64(ts.UnixMilli()))
	s.set(k, val)
	s.set(timeKey(ts.UnixMilli(), key, idx), []byte{1})
	return false, nil
}

// sweepGrace is how long past the window a key is kept: a redo after a crash (within that time) finds every
// key its first run decided with.
const sweepGrace = time.Hour

// sweep removes idempotency keys older than the window and its grace, at most once a minute (wall clock).
// Age is measured against the record's time, but never a time ahead of this machine's clock: one record
// from the future does not expire every key.
func (s *partState) sweep(recordTime, wall time.Time) error {
	if s.st == nil || s.period == nil || wall.Sub(s.lastSweep) < sweepEvery {
		return nil
	}
	s.lastSweep = wall
	now := recordTime
	if now.After(wall) {
		now = wall
	}
	cutoff := now.Add(-s.window - sweepGrace).UnixMilli()
	var expired []string
	err := s.st.Scan(prefixTime, func(key, _ []byte) bool {
		if len(key) < len(prefixTime)+8+10 {
			return true
		}
		ts := int64(binary.BigEndian.Uint64(key[len(prefixTime):]))
		if ts >= cutoff || len(expired) >= 10000 {
			return false
		}
		expired = append(expired, string(key))
		return true
	})
	if err != nil {
		return fmt.Errorf("sweeping idempotency keys: %w", err)
	}
	for _, tk := range expired {
		rest := tk[len(prefixTime)+8:]
		s.set(prefixIdem+rest, nil)
		s.set(tk, nil)
	}
	if len(expired) == 10000 {
		s.lastSweep = time.Time{} // more to do: again at the next record
	}
	return nil
}

// count runs fn on the stats if the record at offset was not counted before.
func (s *partState) count(offset int64, fn func(*validate.Stats)) {
	if s.stats.Counts(offset) {
		fn(&s.stats)
		s.dirty = true
	}
}

// observe moves the watermark past a placed row; it reports whether the row is late.
func (s *partState) observe(offset int64, ev, now time.Time) bool {
	late := s.wm.Observe(offset, ev, now, s.lateness)
	s.dirty = true
	return late
}
