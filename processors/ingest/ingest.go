// Package ingest is the first stage of the topology, one goka processor per source topic with three steps
// fused: ingest (each record keeps its source identity: topic, topic id, partition, offset, timestamp),
// validate (bad records go to <topic>.dlq with the reason in headers) and bucket (the row's table partition,
// which is the key it is re-keyed by). Rows of one source partition and one table partition are batched and
// produced to the repartition topic; a source record is acknowledged, in offset order, once everything it
// became is in Kafka.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/acks"
	"github.com/minipipe/minipipe/processors/dlq"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/processors/validate"
	"github.com/minipipe/minipipe/processors/workers"
	"github.com/minipipe/minipipe/state"
)

// Feed is what a topic's processor feeds: a generation of a table.
type Feed struct {
	layout.Table
	Generation int
	TopicID    string
	// From decides whether a record (partition, offset) goes to this generation; nil: all. A generation
	// being replayed takes from the live pipeline only the offsets the replay does not cover.
	From func(partition int32, offset int64) bool
}

// Rows is the producer of the repartition topic: batches never larger than the topic takes (see
// kafka.SizedProducer).
type Rows interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// MaxBytes is the largest record the repartition topic takes.
	MaxBytes() int
	// Refresh reads that limit from the broker again.
	Refresh(ctx context.Context) (int, error)
}

// Config configures one topic's ingest processor.
type Config struct {
	Table      Feed
	Group      string      // the goka group (consumer group) of this topic's processor
	RowsTopic  string      // the repartition topic
	Rows       Rows        // produces row batches to RowsTopic
	Producer   *kgo.Client // produces dead letters (batches up to dlq.MaxBytes)
	Validator  *validate.Validator
	Linger     time.Duration // how long rows wait for more of their kind before they are produced (default 5ms)
	BatchRows  int           // rows per batch (default 500)
	BatchBytes int           // bytes per batch (default 256 KiB, and never more than the repartition topic takes)
	// RetryBackoff is the first pause before a failed produce is tried again (default 250ms, doubling to 30s).
	RetryBackoff time.Duration
	// MaxPendingBytes bounds the rows a source partition holds that Kafka has not confirmed (default 32 MiB);
	// past it the partition waits (backpressure) instead of growing.
	MaxPendingBytes int
	// Tables reaches the stores of the processor's group table, where the steps keep their state per source
	// partition (nil: no state: no idempotency, no stats, no watermarks).
	Tables *state.Tables
	// IdempotencyWindow is how long an Idempotency-Key is remembered (default 24h).
	IdempotencyWindow time.Duration
	// AllowedLateness is how far behind its partition's watermark a row may be before it counts as late.
	// When it is set, each source partition's watermark is sent to every partition of the repartition
	// topic (RowsPartitions of them) once the rows it covers are in Kafka, for the commit stage's
	// completeness markers.
	AllowedLateness  time.Duration
	RowsPartitions   int
	SourcePartitions int32
	Metrics          *Metrics
	Log              *slog.Logger
}

// Ingest is the processor of one source topic.
type Ingest struct {
	cfg Config

	retired atomic.Bool // the processor stops for good: its open files are sealed as it stops

	parts workers.Set[*part]
}

// New prepares a topic's ingest processor.
func New(cfg Config) *Ingest {
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 500
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 10
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 250 * time.Millisecond
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = 32 << 20
	}
	if cfg.IdempotencyWindow <= 0 {
		cfg.IdempotencyWindow = 24 * time.Hour
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Log = cfg.Log.With("component", "ingest", "topic", cfg.Table.Topic, "table", cfg.Table.Name, "generation", cfg.Table.Generation)
	return &Ingest{cfg: cfg}
}

// Process is the goka callback of the source topic: ingest → validate → bucket, fused.
func (in *Ingest) Process(ctx goka.Context, msg interface{}) { in.process(ctx, msg) }

// Retire says the processor is about to stop for good (its generation was replaced by a replay, or its
// topic is gone): as each partition stops, it seals its open files, which no one would end otherwise.
func (in *Ingest) Retire() { in.retired.Store(true) }

// TableTopic is the processor's group table topic, where its steps keep their state.
func (in *Ingest) TableTopic() string { return string(goka.GroupTable(goka.Group(in.cfg.Group))) }

// part is one source partition's pending work: the batch being gathered for each table partition, and the
// chain of batches sent for each, which are acknowledged only in the order they were sent.
type part struct {
	in      *Ingest
	id      int32
	ctx     context.Context // goka's context of this assignment of the partition
	acks    *acks.Queue
	mu      sync.Mutex
	batches map[string]*pending // gathering rows, by table partition key
	chains  map[string]*chain   // sent, by table partition key
	retries int                 // chains waiting to send again
	kick    chan struct{}       // a batch was started, a resend scheduled or a send finished: run has work
	done    chan struct{}

	// The producer's promises only queue their outcome here (they never wait for mu, which a callback
	// may hold while the producer makes it wait); run applies them.
	outMu    sync.Mutex
	outcomes []outcome

	pending int        // bytes of rows gathered or sent and not yet confirmed (with mu)
	room    *sync.Cond // on mu: pending fell below MaxPendingBytes, or the partition was revoked

	state   *partState // the steps' state of this partition (with mu)
	active  time.Time  // when a record was last read, or the callback last waited for something (with mu)
	blocked bool       // the callback waits for room (backpressure): not idle (with mu)

	placed [placements]placement // the callback's (no lock): the last partitions rows went to
	nextPl int                   // the entry of placed the next new partition replaces

	acked      atomic.Int64 // the last offset acknowledged
	mark       *envelope.Watermark
	markSent   time.Time
	markedAt   int64 // Through of the last marker sent
	markedIdle bool  // whether it said the partition was idle
}

// outcome is what the producer said of one send of a batch.
type outcome struct {
	c       *chain
	b       *pending
	attempt int
	size    int
	err     error
}

// chain is what was sent for one table partition from this source partition, oldest first. A batch is
// confirmed when the producer acknowledges it and every batch before it; only then are its records
// acknowledged. When a send fails, that batch and every one after it are sent again, in order, with their
// Prev links made anew: the commit stage drops the later ones that did land (their Prev is a batch it never
// saw) and takes the new sends instead, so no row is skipped and none is written twice.
type chain struct {
	key      string
	base     int64 // last offset of the last confirmed batch (-1: none yet in this assignment)
	items    []*pending
	resendAt time.Time // when waiting, the items not sent wait until then
	waiting  bool
	backoff  time.Duration
}

type pending struct {
	batch   envelope.Batch
	bytes   int // the encoded size, estimated as rows are added
	entries []*acks.Entry
	keys    []string // the source records' keys, for dead letters
	since   time.Time
	attempt int  // bumped by every send and by every failure, so that stale promises are ignored
	sent    bool // handed to the producer in the current attempt
	ok      bool
	tooBig  int // sends of this single row refused as too large although it fits the limit
}

// rowBytes is what the batch's rows count against MaxPendingBytes.
func (b *pending) rowBytes() int {
	n := 0
	for i := range b.batch.Rows {
		n += rowBytes(&b.batch.Rows[i])
	}
	return n
}

// last is the offset of the batch's last row; a seal without rows passes on the link it was sent with.
func (b *pending) last() int64 {
	if len(b.batch.Rows) == 0 {
		return b.batch.Prev
	}
	return b.batch.Rows[len(b.batch.Rows)-1].Offset
}

// headerBytes estimates the encoded batch's bytes before its rows.
func headerBytes(b *envelope.Batch) int {
	n := 48 + len(b.Table) + len(b.Path) + len(b.Source.Topic) + len(b.Source.TopicID)
	for _, p := range b.Partitions {
		n += 4 + len(p[0]) + len(p[1])
	}
	return n
}

// rowBytes estimates a row's encoded bytes.
func rowBytes(r *envelope.Row) int { return 24 + len(r.Payload) }

func (in *Ingest) part(ctx goka.Context) (*part, error) {
	pid := ctx.Partition()
	return in.parts.Get(pid, ctx.Context(), func(prev *part, ended bool) (*part, error) {
		// A message goka hands over after this assignment's worker drained: it is taken by a new worker
		// (whose run drains it at once), unless the ended one failed a record — acknowledging this one
		// would then commit past it. The new worker acknowledges through the ended one's queue: a record
		// that reached the ended worker after its drain is still held there, and no later record may be
		// acknowledged before it.
		if ended {
			if err := prev.acks.Failed(); err != nil {
				return nil, fmt.Errorf("an earlier record of this assignment failed: %w", err)
			}
		}
		var sp *state.Partition
		if in.cfg.Tables != nil {
			st := in.cfg.Tables.Store(in.TableTopic(), pid)
			if st == nil {
				return nil, fmt.Errorf("no state store open for %s/%d", in.TableTopic(), pid)
			}
			sp = &state.Partition{Store: st, Topic: in.TableTopic(), Partition: pid, Producer: in.cfg.Producer}
		}
		ps, err := loadState(sp, in.cfg.IdempotencyWindow, in.cfg.AllowedLateness)
		if err != nil {
			return nil, fmt.Errorf("reading the state of partition %d: %w", pid, err)
		}
		p := in.newPart(pid, ctx.Context())
		if ended {
			p.acks = prev.acks
		}
		p.state = ps
		p.resendSeals()
		return p, nil
	}, func(p *part) { p.run(p.ctx) })
}

func (in *Ingest) newPart(id int32, ctx context.Context) *part {
	p := &part{in: in, id: id, ctx: ctx, acks: acks.NewQueue(), batches: map[string]*pending{}, chains: map[string]*chain{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), state: newPartState()}
	p.room = sync.NewCond(&p.mu)
	p.acked.Store(-1)
	p.markedAt = -1
	p.active = time.Now() // a new assignment is busy until it has been quiet for the lateness
	return p
}

func (p *part) nudge() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run flushes batches that have waited their linger and sends again what failed once its backoff is over
// (it sleeps while there is neither); on revocation it flushes everything and waits for the
// acknowledgements, so that goka's rebalance finds no message in flight.
func (p *part) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := p.tick()
		if wait > 0 {
			t.Reset(wait)
		}
		select {
		case <-p.kick:
		case <-t.C:
		case <-ctx.Done():
			p.mu.Lock()
			p.room.Broadcast() // a process call waiting for room gives up
			p.mu.Unlock()
			p.drain()
			return
		}
		if wait > 0 && !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// tick produces the batches past their linger and the resends past their backoff, and returns how long
// until the next one is due (0: nothing is).
func (p *part) tick() time.Duration {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applyOutcomes()
	var next time.Duration
	due := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	due(p.watermarkMarker(now))
	due(p.sealDue(now))
	if d := p.state.due(now); d > 0 {
		if d <= time.Millisecond {
			p.state.flush(p.acked.Load())
		} else {
			due(d)
		}
	} else if len(p.state.dirtyFiles) > 0 {
		p.state.flush(p.acked.Load())
	}
	for k, b := range p.batches {
		if wait := p.in.cfg.Linger - now.Sub(b.since); wait <= 0 {
			delete(p.batches, k)
			p.produce(b)
		} else {
			due(wait)
		}
	}
	if p.retries > 0 {
		for _, c := range p.chains {
			if !c.waiting {
				continue
			}
			if wait := c.resendAt.Sub(now); wait > 0 {
				due(wait)
				continue
			}
			c.waiting = false
			p.retries--
			for _, b := range c.items {
				if !b.sent {
					p.send(c, b)
				}
			}
		}
	}
	return next
}

// watermarkMarker sends the partition's watermark to every partition of the repartition topic once the
// rows it covers are acknowledged (so in Kafka, before the marker in every partition), when it moved or
// at least every second (an idle partition keeps saying so); it returns when to look again. Called with
// p.mu held.
func (p *part) watermarkMarker(now time.Time) time.Duration {
	in := p.in
	if in.cfg.AllowedLateness <= 0 || in.cfg.RowsPartitions < 1 || in.cfg.Producer == nil {
		return 0
	}
	wm := p.state.wm
	// Idle is judged here, by this partition's own clock and activity: no record read (nor waited for) for
	// longer than the lateness.
	idle := now.Sub(p.active) > in.cfg.AllowedLateness && !p.blocked
	moved := wm.Through > p.markedAt && now.Sub(p.markSent) >= time.Second
	if p.mark == nil && wm.Through >= 0 && (moved || idle != p.markedIdle || now.Sub(p.markSent) >= 10*time.Second) {
		t := in.cfg.Table
		p.mark = &envelope.Watermark{Table: t.Name, Generation: t.Generation, Source: envelope.Source{Topic: t.Topic, TopicID: t.TopicID, Partition: p.id},
			Partitions: max(in.cfg.SourcePartitions, p.id+1), Through: wm.Through, EventTime: wm.EventTime, Arrived: wm.Arrived, Idle: idle}
	}
	if p.mark == nil || p.acked.Load() < p.mark.Through {
		return stateFlush
	}
	value := envelope.EncodeWatermark(*p.mark)
	key := []byte(envelope.WatermarkKey(p.mark.Table, p.mark.Generation))
	for r := 0; r < in.cfg.RowsPartitions; r++ {
		in.cfg.Producer.Produce(context.Background(), &kgo.Record{Topic: in.cfg.RowsTopic, Partition: int32(r), Key: key, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				in.cfg.Log.Debug("a watermark marker was not produced; the next one follows within seconds", "error", err)
			}
		})
	}
	p.markedAt, p.markedIdle, p.markSent, p.mark = p.mark.Through, p.mark.Idle, now, nil
	return stateFlush
}

// drain runs on revocation: what is gathered is sent (unless its chain waits to resend), and the partition
// waits up to 45s for the acknowledgements; what cannot finish (a chain waiting to resend, Kafka down) is
// acknowledged with an error, and the next owner redoes it from the committed offset.
func (p *part) drain() {
	// goka may still hand over a message or two once the assignment is over: they are taken, and what they
	// gather is sent by this loop.
	flush := func() {
		p.state.flush(p.acked.Load())
		for k, b := range p.batches {
			delete(p.batches, k)
			p.produce(b)
		}
	}
	p.mu.Lock()
	if p.in.retired.Load() {
		for key, f := range p.state.files {
			if f.Open() {
				at := f.Last
				f.Seal()
				p.state.dirtyFiles[key] = true
				p.seal(key, at)
			}
		}
	}
	flush()
	p.mu.Unlock()
	deadline := time.Now().Add(45 * time.Second)
	// Seals hold no record: the chains must be empty too, or a seal still in the producer is lost.
	for (p.acks.Len() > 0 || p.pendingSends()) && time.Now().Before(deadline) {
		p.mu.Lock()
		flush()
		p.applyOutcomes()
		stuck := p.unsent() && !p.inFlight()
		p.mu.Unlock()
		if stuck {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.acks.FailAll(errors.New("partition revoked before its rows were produced"))
}

// pendingSends reports whether a chain holds a batch the producer has not confirmed (it takes p.mu).
func (p *part) pendingSends() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applyOutcomes()
	return len(p.chains) > 0
}

// unsent reports whether a batch waits to be sent again (after revocation it never will be).
func (p *part) unsent() bool {
	for _, c := range p.chains {
		for _, b := range c.items {
			if !b.sent {
				return true
			}
		}
	}
	return false
}

// inFlight reports whether the producer still holds a batch of this partition.
func (p *part) inFlight() bool {
	for _, c := range p.chains {
		for _, b := range c.items {
			if b.sent && !b.ok {
				return true
			}
		}
	}
	return false
}

func (p *part) chain(key string) *chain {
	c := p.chains[key]
	if c == nil {
		c = &chain{key: key, base: -1}
		p.chains[key] = c
	}
	return c
}

// produce appends a gathered batch to its chain and sends it, unless the chain waits to send again what
// failed (then it goes after that, in order). It is called with p.mu held: batches of one key must reach
// the producer in the order their rows were read, whichever goroutine (the callback for a full batch, the
// timer for the rest) sends them.
func (p *part) produce(b *pending) {
	c := p.chain(envelope.Key(b.batch.Table, b.batch.Generation, b.batch.Path))
	c.items = append(c.items, b)
	if !c.waiting {
		p.send(c, b)
	}
}

// send hands one batch of a chain to the producer, linked to the batch before it. Called with p.mu held.
func (p *part) send(c *chain, b *pending) {
	prev := c.base
	for i, x := range c.items {
		if x == b {
			if i > 0 {
				prev = c.items[i-1].last()
			}
			break
		}
	}
	b.batch.Prev = prev
	b.attempt++
	b.sent, b.ok = true, false
	attempt := b.attempt
	value := envelope.EncodeBatch(&b.batch)
	p.in.cfg.Rows.Produce(context.Background(), &kgo.Record{Topic: p.in.cfg.RowsTopic, Key: []byte(c.key), Value: value, Partition: -1},
		func(r *kgo.Record, err error) {
			p.outMu.Lock()
			p.outcomes = append(p.outcomes, outcome{c, b, attempt, len(r.Key) + len(r.Value), err})
			p.outMu.Unlock()
			p.nudge()
		})
}

// applyOutcomes applies the producer's outcomes that arrived since the last call; called with p.mu held.
func (p *part) applyOutcomes() {
	p.outMu.Lock()
	outs := p.outcomes
	p.outcomes = nil
	p.outMu.Unlock()
	for _, o := range outs {
		p.sent(o.c, o.b, o.attempt, o.size, o.err)
	}
}

// sent applies the outcome of one send of a batch (with p.mu held).
func (p *part) sent(c *chain, b *pending, attempt, size int, err error) {
	in := p.in
	if b.attempt != attempt {
		return // superseded: the batch failed meanwhile and is being sent again
	}
	if err != nil {
		p.failed(c, b, size, err)
		return
	}
	b.ok = true
	in.cfg.Metrics.rows.Add(float64(len(b.batch.Rows)))
	in.cfg.Metrics.batches.Inc()
	// Confirmed in order: the head of the chain and whatever follows it already acknowledged.
	for len(c.items) > 0 && c.items[0].ok {
		head := c.items[0]
		c.items[0] = nil
		c.items = c.items[1:]
		c.base = head.last()
		if len(head.batch.Rows) == 0 {
			if f := p.state.files[c.key]; f != nil {
				f.Confirmed(head.batch.SealAt)
				p.state.dirtyFiles[c.key] = true
			}
		}
		for _, e := range head.entries {
			p.acks.Release(e, nil)
		}
		p.unhold(head.rowBytes())
	}
	if len(c.items) == 0 && !c.waiting && p.chains[c.key] == c {
		delete(p.chains, c.key) // base -1 again is sound: everything before is confirmed
	}
}

// failed handles a send that failed (with p.mu held): a batch too large for the repartition topic is split
// in two, a single row too large is dead-lettered, anything else is sent again after a backoff; either
// way that batch and every one after it in the chain are sent again, in order.
func (p *part) failed(c *chain, b *pending, size int, err error) {
	in := p.in
	idx := -1
	for i, x := range c.items {
		if x == b {
			idx = i
			break
		}
	}
	if idx < 0 {
		return
	}
	// Every send from here on is stale: its promise is ignored, and the batch is sent again.
	for _, x := range c.items[idx:] {
		x.attempt++
		x.sent, x.ok = false, false
	}
	backoff := time.Duration(0)
	switch {
	case kafka.IsTooLarge(err) && len(b.batch.Rows) > 1:
		in.cfg.Metrics.splits.Inc()
		in.cfg.Log.Info("a row batch is too large for the repartition topic; splitting it", "partition", p.id, "rows", len(b.batch.Rows), "bytes", size, "error", err)
		half := len(b.batch.Rows) / 2
		b1, b2 := b.split(half)
		c.items = append(c.items[:idx], append([]*pending{b1, b2}, c.items[idx+1:]...)...)
	case kafka.IsTooLarge(err) && p.fitsAlone(size) && b.tooBig < 8:
		// It fits the topic alone (its limit read again just now): the limit changed, or the row was
		// sent in one batch with others. The producer has been resized to the topic's limit; it goes again.
		b.tooBig++
		c.backoff = min(max(c.backoff*2, in.cfg.RetryBackoff), 30*time.Second)
		backoff = c.backoff
	case kafka.IsTooLarge(err) && len(b.batch.Rows) == 0:
		// A seal alone cannot be too large: the producer's limit is wrong. Sent again like any failure.
		c.backoff = min(max(c.backoff*2, in.cfg.RetryBackoff), 30*time.Second)
		backoff = c.backoff
	case kafka.IsTooLarge(err):
		// One row alone is larger than the repartition topic takes: it becomes a dead letter. A seal after
		// it is sent on its own.
		row := b.batch.Rows[0]
		if b.batch.Seal {
			seal := &pending{batch: b.batch, since: b.since}
			seal.batch.Rows, seal.batch.SealAt = nil, row.Offset
			if f := p.state.files[c.key]; f != nil {
				f.Pending = append(f.Pending, row.Offset)
				p.state.dirtyFiles[c.key] = true
			}
			seal.bytes = headerBytes(&seal.batch)
			c.items[idx] = seal
		} else {
			c.items = append(c.items[:idx], c.items[idx+1:]...)
		}
		value := avro.AppendWireHeader(make([]byte, 0, avro.WireHeaderSize+len(row.Payload)), row.SchemaID)
		value = append(value, row.Payload...)
		rej := &validate.Rejection{Code: dlq.CodeTooLarge, Reason: fmt.Sprintf("the row of %d bytes is larger than the repartition topic %s takes (max.message.bytes %d): %v",
			size, in.cfg.RowsTopic, in.cfg.Rows.MaxBytes(), err)}
		p.acks.Hold(b.entries[0])
		go p.deadLetter(b.entries[0], b.keys[0], value, b.batch.Source.Partition, row.Offset, row.Timestamp, rej)
		p.acks.Release(b.entries[0], nil)
		p.unhold(b.rowBytes())
		if len(c.items) == 0 {
			if !c.waiting && p.chains[c.key] == c {
				delete(p.chains, c.key)
			}
			return
		}
		if idx >= len(c.items) {
			// Nothing after it: the chain goes on from the row before it.
			return
		}
	default:
		c.backoff = min(max(c.backoff*2, in.cfg.RetryBackoff), 30*time.Second)
		backoff = c.backoff
		in.cfg.Metrics.retries.Inc()
		in.cfg.Log.Warn("producing rows failed; sending them again", "partition", p.id, "rows_topic", in.cfg.RowsTopic, "batches", len(c.items)-idx, "backoff", backoff, "error", err)
	}
	if p.ctx.Err() != nil {
		return // revoked: the next owner redoes it
	}
	if !c.waiting {
		c.waiting = true
		p.retries++
	}
	if t := time.Now().Add(backoff); c.resendAt.Before(t) || backoff == 0 {
		c.resendAt = t
	}
	p.nudge()
}

// fitsAlone reports whether a record of size bytes fits the repartition topic, its limit read again from
// the broker (the producer is resized to it when it changed). Called with p.mu held: the producer's
// promises never wait for it.
func (p *part) fitsAlone(size int) bool {
	limit, err := p.in.cfg.Rows.Refresh(context.Background())
	if err != nil {
		p.in.cfg.Log.Warn("reading the repartition topic's max.message.bytes", "error", err)
	}
	return size+kafka.RecordOverhead <= limit
}

// hold counts bytes of rows gathered or sent but not confirmed; past MaxPendingBytes, process waits.
func (p *part) hold(n int) { p.pending += n }

// unhold counts bytes confirmed (or dead-lettered), and wakes a process call waiting for room.
func (p *part) unhold(n int) {
	p.pending -= n
	if p.pending < p.in.cfg.MaxPendingBytes {
		p.room.Broadcast()
	}
}

// split cuts a batch in two at row i.
func (b *pending) split(i int) (*pending, *pending) {
	b1, b2 := *b, *b
	b1.batch.Rows, b2.batch.Rows = b.batch.Rows[:i:i], b.batch.Rows[i:]
	b1.entries, b2.entries = b.entries[:i:i], b.entries[i:]
	b1.keys, b2.keys = b.keys[:i:i], b.keys[i:]
	b1.bytes = headerBytes(&b1.batch)
	for j := range b1.batch.Rows {
		b1.bytes += rowBytes(&b1.batch.Rows[j])
	}
	b2.bytes = b.bytes - b1.bytes + headerBytes(&b2.batch)
	b1.tooBig, b2.tooBig = 0, 0
	b1.batch.Seal = false // a seal ends the file after the batch's last row: it stays with b2
	return &b1, &b2
}

// process is the goka callback: ingest → validate → bucket, fused.
func (in *Ingest) process(ctx goka.Context, msg interface{}) {
	p, err := in.part(ctx)
	if err != nil {
		ctx.DeferCommit()(err)
		return
	}
	commit, off := ctx.DeferCommit(), ctx.Offset()
	e := p.acks.Push(func(err error) {
		commit(err)
		if err == nil {
			p.acked.Store(off)
		}
	})
	defer p.acks.Release(e, nil)
	in.cfg.Metrics.records.Inc()
	offset := ctx.Offset()
	value, _ := msg.([]byte)
	t := in.cfg.Table
	if t.From != nil && !t.From(ctx.Partition(), offset) {
		return // another generation's record
	}

	// ingest: the record's state is written before it can be acknowledged; a retry of an Idempotency-Key
	// request seen before is dropped.
	now := time.Now()
	p.mu.Lock()
	p.active = now
	p.state.begin(p.acks, e, now)
	if value == nil {
		p.state.count(offset, func(s *validate.Stats) { s.Tombstones++ })
		p.mu.Unlock()
		in.cfg.Metrics.skipped.Inc() // a tombstone is no row
		return
	}
	if err := p.state.sweep(ctx.Timestamp(), now); err != nil {
		in.cfg.Log.Warn("idempotency keys", "partition", ctx.Partition(), "error", err)
	}
	if key, idx, ok := idempotency(ctx.Headers()); ok {
		repeat, err := p.state.admit(key, idx, offset, ctx.Timestamp())
		if err != nil {
			p.mu.Unlock()
			p.acks.Fail(e, fmt.Errorf("idempotency state: %w", err))
			return
		}
		if repeat {
			p.state.count(offset, func(s *validate.Stats) { s.Repeats++ })
			p.mu.Unlock()
			in.cfg.Metrics.repeats.Inc()
			return
		}
	}
	p.mu.Unlock()
	src := envelope.Source{Topic: t.Topic, TopicID: t.TopicID, Partition: ctx.Partition()}

	var (
		id      int
		schema  *avro.Schema
		payload []byte
	)
	for attempt := 0; ; attempt++ {
		id, schema, payload, err = in.cfg.Validator.Check(value)
		var rej *validate.Rejection
		if err == nil || errors.As(err, &rej) {
			break
		}
		// The registry cannot answer: wait, without dropping or misfiling the record.
		if attempt%20 == 0 {
			in.cfg.Log.Warn("schema registry unavailable; the partition waits", "partition", src.Partition, "offset", ctx.Offset(), "error", err)
		}
		p.mu.Lock()
		p.active = time.Now() // waiting is not idle: the watermark must not pass this record
		p.mu.Unlock()
		select {
		case <-ctx.Context().Done():
			p.acks.Fail(e, fmt.Errorf("stopped while waiting for the schema registry: %w", err))
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	dead := func(rej *validate.Rejection) {
		p.mu.Lock()
		p.state.begin(p.acks, e, now)
		p.state.count(offset, func(s *validate.Stats) { s.Reject(rej.Code) })
		p.mu.Unlock()
		p.acks.Hold(e)
		go p.deadLetter(e, ctx.Key(), value, ctx.Partition(), ctx.Offset(), ctx.Timestamp().UnixMilli(), rej)
	}
	if err != nil {
		dead(err.(*validate.Rejection))
		return
	}

	ts := ctx.Timestamp()
	var fieldText string
	if t.TimestampField != "" {
		v, ft, found, ferr := avro.FieldValue(schema, payload, t.TimestampField)
		if ferr == nil && !found {
			ferr = fmt.Errorf("schema %d has no field %s", id, t.TimestampField)
		}
		if ferr == nil {
			ts, ferr = avro.TimeOf(v, ft)
		}
		if ferr == nil && t.Spec.Source != "" {
			ferr = hiddenTime(t.Spec, ft, ts)
		}
		if ferr != nil {
			dead(&validate.Rejection{Code: validate.CodeTimestamp, Reason: fmt.Sprintf("--timestamp-field %s: %v", t.TimestampField, ferr)})
			return
		}
	}
	if t.Spec.Kind == layout.Field {
		v, _, found, ferr := avro.FieldValue(schema, payload, t.Spec.Field)
		if ferr == nil && !found {
			ferr = fmt.Errorf("schema %d has no field %s", id, t.Spec.Field)
		}
		if ferr != nil {
			dead(&validate.Rejection{Code: validate.CodeField, Reason: fmt.Sprintf("partition field %s: %v", t.Spec.Field, ferr)})
			return
		}
		fieldText = layout.FieldText(v)
	}
	values, path, key := p.place(ts, fieldText)
	row := envelope.Row{Offset: ctx.Offset(), Timestamp: ts.UnixMilli(), SchemaID: id, Payload: payload}
	size := rowBytes(&row)
	// A batch never grows past what the repartition topic takes (a row larger than that alone goes in a
	// batch of its own, which the producer refuses and which then becomes a dead letter).
	limit := min(in.cfg.BatchBytes, in.cfg.Rows.MaxBytes()-kafka.RecordOverhead-len(key))

	p.mu.Lock()
	// Backpressure: while the repartition topic does not take rows (a chain waits to send again), this
	// partition stops reading rather than holding an unbounded backlog. It waits before the row counts
	// anywhere: the clock's seals must not end a file at a row that is not in a batch yet.
	for p.pending >= in.cfg.MaxPendingBytes && p.ctx.Err() == nil {
		p.blocked = true
		p.room.Wait()
		p.blocked = false
	}
	p.state.begin(p.acks, e, now)
	p.state.count(offset, func(s *validate.Stats) { s.Accept(offset, ctx.Timestamp().UnixMilli(), id) })
	if p.state.observe(offset, ts, now) {
		in.cfg.Metrics.late.Inc()
	}
	cut := p.state.file(key).Add(offset, len(payload), id, now, t.Rotation, in.cfg.Validator.NewFile)
	if cut.Before {
		p.seal(key, cut.BeforeAt)
	}
	b := p.batches[key]
	if b != nil && b.bytes+size > limit {
		delete(p.batches, key)
		p.produce(b)
		b = nil
	}
	if b == nil {
		b = &pending{batch: envelope.Batch{Table: t.Name, Generation: t.Generation, Path: path, Partitions: values, Source: src}, since: now}
		b.bytes = headerBytes(&b.batch)
		p.batches[key] = b
		p.nudge()
	}
	b.batch.Rows = append(b.batch.Rows, row)
	b.bytes += size
	p.hold(size)
	p.acks.Hold(e)
	b.entries = append(b.entries, e)
	b.keys = append(b.keys, ctx.Key())
	if cut.After {
		b.batch.Seal = true
		in.cfg.Metrics.seals.Inc()
	}
	if cut.After || len(b.batch.Rows) >= in.cfg.BatchRows || b.bytes >= limit {
		delete(p.batches, key)
		p.produce(b)
	}
	p.mu.Unlock()
}

// placements is how many table partitions a source partition's callback remembers: rows spread over a
// few days or hours (late data, a backfill) find theirs without building its path again.
const placements = 8

// placement is a table partition rows were placed in.
type placement struct {
	lo, hi    int64 // the partition's time range, Unix ms (daily, hourly)
	field     string
	values    [][2]string
	path, key string
}

// place returns a row's partition values, path and repartition key, from a recent row's when it falls in
// the same partition. Called from the callback only (one goroutine per partition).
func (p *part) place(ts time.Time, field string) ([][2]string, string, string) {
	t := &p.in.cfg.Table
	ms := ts.UnixMilli()
	for i := range p.placed {
		c := &p.placed[i]
		if c.key == "" {
			continue
		}
		switch t.Spec.Kind {
		case layout.Daily, layout.Hourly:
			if ms >= c.lo && ms < c.hi {
				return c.values, c.path, c.key
			}
		case layout.Field:
			if field == c.field {
				return c.values, c.path, c.key
			}
		default:
			return c.values, c.path, c.key
		}
	}
	values := t.Spec.Values(ts, field)
	path := layout.Path(values)
	key := envelope.Key(t.Name, t.Generation, path)
	if t.Spec.NeedsTime() {
		// Cached only when the range is the one the row is in (a repeated hour at a DST change is not).
		start, end, ok := t.Spec.Span(values)
		if !ok || ts.Before(start) || !ts.Before(end) {
			return values, path, key
		}
		p.remember(placement{lo: start.UnixMilli(), hi: end.UnixMilli(), values: values, path: path, key: key})
		return values, path, key
	}
	p.remember(placement{field: field, values: values, path: path, key: key})
	return values, path, key
}

// remember keeps a placement, in place of the oldest.
func (p *part) remember(c placement) {
	p.placed[p.nextPl] = c
	p.nextPl = (p.nextPl + 1) % placements
}

// seal ends the file of table partition key from this source partition after the row at offset at: the
// batch gathering its rows carries the seal when it ends there, else a seal without rows follows it.
// Called with p.mu held.
func (p *part) seal(key string, at int64) {
	p.in.cfg.Metrics.seals.Inc()
	b := p.batches[key]
	if b != nil {
		delete(p.batches, key)
		if b.last() == at {
			b.batch.Seal = true
			p.produce(b)
			return
		}
		p.produce(b)
	}
	if f := p.state.files[key]; f != nil {
		f.Pending = append(f.Pending, at)
		p.state.dirtyFiles[key] = true
	}
	p.sealOnly(key, at)
}

// resendSeals sends again the seals without rows a previous owner sent and Kafka never confirmed.
func (p *part) resendSeals() {
	for key, f := range p.state.files {
		for _, at := range f.Pending {
			p.sealOnly(key, at)
		}
	}
}

// sealOnly sends a seal without rows; the file state keeps it pending until Kafka confirms it.
func (p *part) sealOnly(key string, at int64) {
	t := p.in.cfg.Table
	s := &pending{batch: envelope.Batch{Table: t.Name, Generation: t.Generation, Source: envelope.Source{Topic: t.Topic, TopicID: t.TopicID, Partition: p.id},
		Seal: true, SealAt: at}, since: time.Now()}
	if tk, gen, path, err := envelope.SplitKey(key); err == nil && tk == t.Name && gen == t.Generation {
		s.batch.Path = path
	}
	s.bytes = headerBytes(&s.batch)
	p.produce(s)
}

// sealDue ends the files that reached the rotate interval, with or without new rows, and returns how long
// until the next one does (0: none open). Called with p.mu held.
func (p *part) sealDue(now time.Time) time.Duration {
	policy := p.in.cfg.Table.Rotation
	var next time.Duration
	for key, f := range p.state.files {
		if f.Due(policy, now) {
			at := f.Last
			f.Seal()
			p.state.dirtyFiles[key] = true
			p.seal(key, at)
			continue
		}
		if d := f.Until(policy, now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	return next
}

// deadLetter sends a record that cannot become a row to the topic's dead-letter topic and releases its
// hold once the dead letter is in Kafka (or, failing that, when the partition goes away).
func (p *part) deadLetter(e *acks.Entry, key string, value []byte, partition int32, offset, timestamp int64, rej *validate.Rejection) {
	in := p.in
	in.cfg.Metrics.dlq.WithLabelValues(in.cfg.Table.Topic, rej.Code).Inc()
	in.cfg.Log.Warn("record sent to the dead-letter topic", "partition", partition, "offset", offset, "reason", rej.Error())
	rec := dlq.Record(dlq.Source{Topic: in.cfg.Table.Topic, Partition: partition, Offset: offset, Timestamp: timestamp, Key: key}, value, rej.Code, rej.Reason)
	p.acks.Release(e, dlq.Produce(p.ctx, in.cfg.Producer, rec, in.cfg.RetryBackoff, in.cfg.Log))
}

// Metrics are the ingest stage's Prometheus metrics, shared by every topic's processor.
type Metrics struct {
	records prometheus.Counter
	rows    prometheus.Counter
	batches prometheus.Counter
	skipped prometheus.Counter
	retries prometheus.Counter
	splits  prometheus.Counter
	repeats prometheus.Counter
	late    prometheus.Counter
	seals   prometheus.Counter
	dlq     *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_records_total", Help: "Source records read."}),
		rows:    prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_rows_total", Help: "Rows produced to the repartition topic."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_batches_total", Help: "Row batches produced to the repartition topic."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_tombstones_total", Help: "Source records without a value, skipped."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_produce_retries_total", Help: "Row batches sent again after a failed produce."}),
		splits:  prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_batch_splits_total", Help: "Row batches split because the repartition topic refused them as too large."}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_idempotent_repeats_total", Help: "Records dropped as retries of an Idempotency-Key request already taken."}),
		late:    prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_late_rows_total", Help: "Rows whose event time is behind their source partition's watermark by more than --allowed-lateness (still committed)."}),
		seals: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_bucket_seals_total",
			Help: "Files ended by the bucket step: full (--flush-size, --max-file-bytes), due (--rotate-interval) or a new schema."}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_dlq_records_total", Help: "Records sent to dead-letter topics, by topic and reason."},
			[]string{"topic", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.rows, m.batches, m.skipped, m.retries, m.splits, m.repeats, m.late, m.seals, m.dlq)
	}
	return m
}

// hiddenTime checks a row's time for a hidden partitioning (--partition-by day(ts), hour(ts)): the field must be
// one Iceberg's transform takes (a timestamp, or a date for day), and its time between the years 1 and 9999
// (its file's dt names the day, and must read back as one).
func hiddenTime(spec layout.Spec, ft *avro.Schema, ts time.Time) error {
	switch ft.LogicalType {
	case "timestamp-millis", "timestamp-micros", "timestamp-nanos", "local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos":
	case "date":
		if spec.Transform() != "day" {
			return fmt.Errorf("--partition-by %s: %s is a date (hour takes a timestamp)", spec, spec.Source)
		}
	default:
		return fmt.Errorf("--partition-by %s: %s is a %s, not an Avro timestamp (timestamp-millis, -micros)", spec, spec.Source, ft.Type)
	}
	if y := ts.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("--partition-by %s: %s is in the year %d", spec, spec.Source, y)
	}
	return nil
}
