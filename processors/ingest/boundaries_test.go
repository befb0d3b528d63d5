package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/processors/validate"
)

type fakeCtx struct {
	gctx
	ctx    context.Context
	off    int64
	ts     time.Time
	mu     *sync.Mutex
	commit map[int64]error
}

func (c *fakeCtx) Partition() int32         { return 0 }
func (c *fakeCtx) Offset() int64            { return c.off }
func (c *fakeCtx) Context() context.Context { return c.ctx }
func (c *fakeCtx) Timestamp() time.Time     { return c.ts }
func (c *fakeCtx) Headers() goka.Headers    { return nil }
func (c *fakeCtx) Key() string              { return "" }
func (c *fakeCtx) DeferCommit() func(error) {
	return func(err error) { c.mu.Lock(); c.commit[c.off] = err; c.mu.Unlock() }
}

// commitModel is the commit stage's rule for one (key, source): Prev links, open file, seals.
type commitModel struct {
	seen  int64
	open  []int64
	files [][]int64
}

func (m *commitModel) land(t *testing.T, r *kgo.Record) {
	b, err := envelope.DecodeBatch(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	if b.Prev > m.seen {
		t.Logf("  commit: drop batch prev=%d seen=%d", b.Prev, m.seen)
		return
	}
	for _, row := range b.Rows {
		if row.Offset > m.seen {
			m.open = append(m.open, row.Offset)
			m.seen = row.Offset
		}
	}
	if b.Seal && len(m.open) > 0 && m.open[len(m.open)-1] <= b.SealAt {
		m.files = append(m.files, m.open)
		m.open = nil
	}
	t.Logf("  commit: landed rows=%d prev=%d seal=%v@%d -> files=%v open=%v", len(b.Rows), b.Prev, b.Seal, b.SealAt, m.files, m.open)
}

// Revocation: a clock seal is in flight (no record waits for it) and fails; the state keeps it pending, and
// the next owner sends it again.
func TestUnconfirmedSealGoesAgain(t *testing.T) {
	rows := &fakeRows{limit: 1 << 20}
	in := New(Config{Table: Feed{Table: layout.Table{Name: "t", Topic: "src", Rotation: layout.Rotation{Interval: time.Millisecond}}, Generation: 1}, RowsTopic: "rows", Rows: rows,
		RetryBackoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	p := in.newPart(0, ctx)
	key := envelope.Key("t", 1, "dt=a")
	p.mu.Lock()
	f := p.state.file(key)
	f.Add(7, 1, 1, time.Now().Add(-time.Second), in.cfg.Table.Rotation, nil)
	p.mu.Unlock()
	p.tick() // sealDue: seal without rows at 7
	cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		s, _ := rows.next()
		s.promise(s.rec, kgo.ErrRecordTimeout)
	}()
	start := time.Now()
	p.drain()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("drain took %v", d)
	}
	f = p.state.files[key]
	if f == nil || fmt.Sprint(f.Pending) != "[7]" {
		t.Fatalf("file state after the failed seal: %+v", f)
	}
	next := in.newPart(0, context.Background())
	next.state = p.state
	next.mu.Lock()
	next.resendSeals()
	next.mu.Unlock()
	s, ok := rows.next()
	if !ok {
		t.Fatal("the next owner did not send the seal again")
	}
	b, err := envelope.DecodeBatch(s.rec.Value)
	if err != nil || !b.Seal || b.SealAt != 7 || len(b.Rows) != 0 {
		t.Fatalf("sent again: %+v %v", b, err)
	}
	s.promise(s.rec, nil)
	next.mu.Lock()
	next.applyOutcomes()
	next.mu.Unlock()
	if f.Pending != nil {
		t.Fatalf("confirmed, still pending: %+v", f)
	}
}

// Backpressure: a row waits for room before it counts into its file, so the clock, sealing the file
// meanwhile, never sends a seal at a row that is not in a batch yet.
func TestBackpressureWaitsBeforeCounting(t *testing.T) {
	const schema = `{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}`
	sch, _ := avro.Parse(schema)
	rows := &fakeRows{limit: 1 << 20}
	in := New(Config{Table: Feed{Table: layout.Table{Name: "t", Topic: "src", Rotation: layout.Rotation{Interval: 100 * time.Millisecond}}, Generation: 1},
		RowsTopic: "rows", Rows: rows, MaxPendingBytes: 1, Linger: time.Millisecond, Validator: validate.New(oneSchema{sch}, "src-value", nil),
		RetryBackoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	commits := map[int64]error{}
	rec, _ := avro.EncodeJSON(schema, 1, `{"id":1}`)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in.process(&fakeCtx{ctx: ctx, off: 0, ts: ts, mu: &mu, commit: commits}, rec)
	done := make(chan struct{})
	go func() {
		in.process(&fakeCtx{ctx: ctx, off: 1, ts: ts, mu: &mu, commit: commits}, rec) // waits for room
		close(done)
	}()
	time.Sleep(300 * time.Millisecond) // the interval passes while it waits
	m := &commitModel{seen: -1}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := rows.next(); ok {
			m.land(t, s.rec)
			s.promise(s.rec, nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-done
	p, _ := in.parts.Get(0, ctx, nil, nil)
	p.mu.Lock()
	for k, f := range p.state.files {
		t.Logf("ingest file state %s: %+v", k, *f)
	}
	p.mu.Unlock()
	if len(m.open) > 0 {
		t.Errorf("commit stage holds open %v and the ingest has no open file to seal it: files=%v", m.open, m.files)
	}
}

type gctx = goka.Context
