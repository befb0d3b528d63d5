package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/processors/acks"
	"github.com/minipipe/minipipe/processors/validate"
	"github.com/minipipe/minipipe/state"
)

// changelog is the group table topic, in memory: it keeps what was produced and confirms on demand.
type changelog struct {
	mu       sync.Mutex
	records  []*kgo.Record
	promises []func(*kgo.Record, error)
	hold     bool
}

func (c *changelog) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	c.mu.Lock()
	c.records = append(c.records, r)
	if c.hold {
		c.promises = append(c.promises, promise)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	promise(r, nil)
}

func (c *changelog) confirm(err error) {
	c.mu.Lock()
	ps := c.promises
	c.promises = nil
	c.mu.Unlock()
	for _, p := range ps {
		p(nil, err)
	}
}

// pebble opens a Pebble store in a temp dir, as state.Builder does for goka.
func pebble(t *testing.T) storage.Storage {
	t.Helper()
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// replay builds a fresh store from the changelog, as goka does when --data-dir is lost.
func (c *changelog) replay(t *testing.T) storage.Storage {
	st := pebble(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.records {
		var err error
		if r.Value == nil {
			err = st.Delete(string(r.Key))
		} else {
			err = st.Set(string(r.Key), r.Value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func newState(t *testing.T, st storage.Storage, log *changelog) *partState {
	t.Helper()
	s, err := loadState(&state.Partition{Store: st, Topic: "g-table", Partition: 0, Producer: log}, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIdempotencyDecisions: the first record of a key and index is kept and its retries dropped; a redo of
// the first record (after a crash) keeps it again; the window ends; and a state rebuilt from the changelog
// alone (--data-dir lost) decides the same.
func TestIdempotencyDecisions(t *testing.T) {
	log := &changelog{}
	q := acks.NewQueue()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	type step struct {
		key    string
		idx    uint64
		offset int64
		at     time.Duration
		repeat bool
	}
	steps := []step{
		{"req-1", 0, 5, 0, false},
		{"req-1", 1, 6, 0, false},
		{"req-1", 0, 5, 0, false}, // the same record redone
		{"req-1", 0, 9, time.Second, true},
		{"req-1", 1, 10, time.Second, true},
		{"req-2", 0, 11, time.Second, false},
		{"req-1", 0, 12, 2 * time.Hour, false}, // past the window: a new request
		{"req-1", 0, 13, 2 * time.Hour, true},
	}
	run := func(s *partState, steps []step) {
		for i, st := range steps {
			e := q.Push(func(error) {})
			s.begin(q, e, time.Now())
			got, err := s.admit(st.key, st.idx, st.offset, base.Add(st.at))
			if err != nil {
				t.Fatal(err)
			}
			if got != st.repeat {
				t.Errorf("step %d (%s/%d at offset %d): repeat %v, want %v", i, st.key, st.idx, st.offset, got, st.repeat)
			}
			s.flush(-1)
			q.Release(e, nil)
		}
	}
	s := newState(t, pebble(t), log)
	run(s, steps)

	// --data-dir lost: the state replayed from the changelog decides every later record the same.
	rebuilt := newState(t, log.replay(t), log)
	run(rebuilt, []step{
		{"req-1", 0, 14, 2 * time.Hour, true},
		{"req-2", 0, 15, time.Second + time.Minute, true},
		{"req-1", 1, 16, 2 * time.Hour, false},
	})
}

// TestSweepForgetsExpiredKeys: keys older than the window (and its grace) are removed, locally and in the
// changelog; a record from the future does not expire the recent ones.
func TestSweepForgetsExpiredKeys(t *testing.T) {
	log := &changelog{}
	q := acks.NewQueue()
	s := newState(t, pebble(t), log)
	old := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	recent := time.Now()
	for i := 0; i < 6; i++ {
		e := q.Push(func(error) {})
		s.begin(q, e, time.Now())
		at, key := old, "old"
		if i == 5 {
			at, key = recent, "recent"
		}
		if _, err := s.admit(key, uint64(i), int64(i), at); err != nil {
			t.Fatal(err)
		}
		s.flush(-1)
		q.Release(e, nil)
	}
	keys := func(p *state.Partition) int {
		n := 0
		for _, prefix := range []string{prefixIdem, prefixTime} {
			if err := p.Scan(prefix, func(_, _ []byte) bool { n++; return true }); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	if n := keys(&state.Partition{Store: log.replay(t)}); n != 12 {
		t.Fatalf("%d keys in the changelog before the sweep, want 12", n)
	}
	e := q.Push(func(error) {})
	s.begin(q, e, time.Now())
	s.lastSweep = time.Time{}
	if err := s.sweep(recent.Add(30*24*time.Hour), time.Now()); err != nil { // a record from a clock a month ahead
		t.Fatal(err)
	}
	s.flush(-1)
	q.Release(e, nil)
	if n := keys(s.st); n != 2 {
		t.Errorf("%d keys left after the sweep, want the recent key's 2", n)
	}
	if n := keys(&state.Partition{Store: log.replay(t)}); n != 2 {
		t.Errorf("%d keys left in the replayed changelog, want 2", n)
	}
}

// TestPeriodHoldsAcknowledgement: no record of a period is acknowledged before the period's changes are
// in Kafka, and a failed change fails the acknowledgement (goka then redelivers).
func TestPeriodHoldsAcknowledgement(t *testing.T) {
	log := &changelog{hold: true}
	q := acks.NewQueue()
	s := newState(t, pebble(t), log)
	var acked []error
	var mu sync.Mutex
	push := func() *acks.Entry {
		return q.Push(func(err error) { mu.Lock(); acked = append(acked, err); mu.Unlock() })
	}
	for o := int64(0); o < 3; o++ {
		e := push()
		s.begin(q, e, time.Now())
		s.count(o, func(st *validate.Stats) { st.Accept(o, 0, 1) })
		q.Release(e, nil)
	}
	s.flush(-1)
	if len(acked) != 0 {
		t.Fatalf("%d records acknowledged before the state reached Kafka", len(acked))
	}
	log.confirm(nil)
	if len(acked) != 3 || acked[0] != nil || acked[2] != nil {
		t.Fatalf("after the state reached Kafka: %v", acked)
	}
	e := push()
	s.begin(q, e, time.Now())
	s.count(3, func(st *validate.Stats) { st.Reject(validate.CodeCorrupt) })
	q.Release(e, nil)
	s.flush(-1)
	log.confirm(context.DeadlineExceeded)
	if len(acked) != 4 || acked[3] == nil {
		t.Fatalf("a failed state write must fail the acknowledgement: %v", acked)
	}
	// The stats count each offset once, whatever is redone.
	rebuilt := newState(t, log.replay(t), &changelog{})
	if rebuilt.stats.Accepted != 3 || rebuilt.stats.Rejected[validate.CodeCorrupt] != 1 || rebuilt.stats.Through != 3 {
		t.Fatalf("rebuilt stats: %+v", rebuilt.stats)
	}
	rebuilt.count(2, func(st *validate.Stats) { st.Accept(2, 0, 1) })
	if rebuilt.stats.Accepted != 3 {
		t.Fatalf("a redone offset was counted again: %+v", rebuilt.stats)
	}
}
