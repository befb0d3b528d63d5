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
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/processors/acks"
	"github.com/minipipe/minipipe/processors/bucket"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/processors/validate"
)

// Table is what the ingest stage needs to know of the table a topic feeds.
type Table struct {
	Name           string
	Generation     int
	Topic          string
	TopicID        string
	Spec           bucket.Spec
	TimestampField string // "" for the Kafka record timestamp
	// From decides whether a record (partition, offset) goes to this generation; nil: all. A generation
	// being replayed takes from the live pipeline only the offsets the replay does not cover.
	From func(partition int32, offset int64) bool
}

// Config configures one topic's ingest processor.
type Config struct {
	Table      Table
	Group      string // the goka group (consumer group) of this topic's processor
	RowsTopic  string // the repartition topic
	DLQTopic   string
	Producer   *kgo.Client
	Validator  *validate.Validator
	Linger     time.Duration // how long rows wait for more of their kind before they are produced (default 5ms)
	BatchRows  int           // rows per batch (default 500)
	BatchBytes int           // bytes per batch (default 256 KiB)
	Metrics    *Metrics
	Log        *slog.Logger
}

// Ingest is the processor of one source topic.
type Ingest struct {
	cfg Config

	mu    sync.Mutex
	parts map[int32]*part
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
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Log = cfg.Log.With("component", "ingest", "topic", cfg.Table.Topic, "table", cfg.Table.Name, "generation", cfg.Table.Generation)
	return &Ingest{cfg: cfg, parts: map[int32]*part{}}
}

// Graph is the goka group graph: the source topic in; rows and dead letters go out through the producer.
func (in *Ingest) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(in.cfg.Group),
		goka.Input(goka.Stream(in.cfg.Table.Topic), new(codec.Bytes), in.process),
	)
}

// part is one source partition's pending work.
type part struct {
	in      *Ingest
	id      int32
	ctx     context.Context // goka's context of this assignment of the partition
	acks    *acks.Queue
	mu      sync.Mutex
	batches map[string]*pending
	kick    chan struct{} // a batch was started: the linger timer has work
	stop    chan struct{}
	done    chan struct{}
}

type pending struct {
	batch   envelope.Batch
	bytes   int
	entries []*acks.Entry
	since   time.Time
}

func (in *Ingest) part(ctx goka.Context) *part {
	pid := ctx.Partition()
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := in.parts[pid]; p != nil && p.ctx == ctx.Context() {
		return p
	}
	p := &part{in: in, id: pid, ctx: ctx.Context(), acks: acks.NewQueue(), batches: map[string]*pending{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	in.parts[pid] = p
	go p.run(ctx.Context())
	return p
}

// run flushes batches that have waited their linger (it sleeps while there are none), and on revocation
// flushes everything and waits for the acknowledgements, so that goka's rebalance finds no message in
// flight.
func (p *part) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	armed := false
	for {
		select {
		case <-p.kick:
			if !armed {
				t.Reset(p.in.cfg.Linger)
				armed = true
			}
		case <-t.C:
			armed = false
			if p.flush(false) {
				t.Reset(p.in.cfg.Linger)
				armed = true
			}
		case <-ctx.Done():
			p.flush(true)
			wctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			if err := p.acks.Wait(wctx); err != nil {
				p.acks.FailAll(errors.New("partition revoked before its rows were produced"))
			}
			cancel()
			p.in.mu.Lock()
			if p.in.parts[p.id] == p {
				delete(p.in.parts, p.id)
			}
			p.in.mu.Unlock()
			return
		}
	}
}

// flush produces the batches past their linger (all of them, with all) and reports whether any is left.
func (p *part) flush(all bool) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, b := range p.batches {
		if all || now.Sub(b.since) >= p.in.cfg.Linger {
			delete(p.batches, k)
			p.produce(b)
		}
	}
	return len(p.batches) > 0
}

// produce hands a batch to the producer. It is called with p.mu held: batches of one key must reach the
// producer in the order their rows were read, whichever goroutine (the callback for a full batch, the
// linger timer for the rest) sends them, or the commit stage would see a source's offsets go backwards.
func (p *part) produce(b *pending) {
	value := envelope.EncodeBatch(&b.batch)
	key := envelope.Key(b.batch.Table, b.batch.Generation, b.batch.Path)
	rows := len(b.batch.Rows)
	entries := b.entries
	p.in.cfg.Producer.Produce(context.Background(), &kgo.Record{Topic: p.in.cfg.RowsTopic, Key: []byte(key), Value: value, Partition: -1},
		func(_ *kgo.Record, err error) {
			if err != nil {
				p.in.cfg.Log.Error("producing rows failed", "error", err)
				err = fmt.Errorf("producing rows to %s: %w", p.in.cfg.RowsTopic, err)
			} else {
				p.in.cfg.Metrics.rows.Add(float64(rows))
				p.in.cfg.Metrics.batches.Inc()
			}
			for _, e := range entries {
				p.acks.Release(e, err)
			}
		})
}

// process is the goka callback: ingest → validate → bucket, fused.
func (in *Ingest) process(ctx goka.Context, msg interface{}) {
	p := in.part(ctx)
	e := p.acks.Push(ctx.DeferCommit())
	defer p.acks.Release(e, nil)
	in.cfg.Metrics.records.Inc()
	value, _ := msg.([]byte)
	if value == nil {
		in.cfg.Metrics.skipped.Inc() // a tombstone is no row
		return
	}
	t := in.cfg.Table
	if t.From != nil && !t.From(ctx.Partition(), ctx.Offset()) {
		return
	}
	src := envelope.Source{Topic: t.Topic, TopicID: t.TopicID, Partition: ctx.Partition()}

	var (
		id      int
		schema  *avro.Schema
		payload []byte
		err     error
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
		select {
		case <-ctx.Context().Done():
			p.acks.Fail(e, fmt.Errorf("stopped while waiting for the schema registry: %w", err))
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		p.deadLetter(ctx, e, value, err.(*validate.Rejection))
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
		if ferr != nil {
			p.deadLetter(ctx, e, value, &validate.Rejection{Code: validate.CodeTimestamp, Reason: fmt.Sprintf("--timestamp-field %s: %v", t.TimestampField, ferr)})
			return
		}
	}
	if t.Spec.Kind == bucket.Field {
		v, _, found, ferr := avro.FieldValue(schema, payload, t.Spec.Field)
		if ferr == nil && !found {
			ferr = fmt.Errorf("schema %d has no field %s", id, t.Spec.Field)
		}
		if ferr != nil {
			p.deadLetter(ctx, e, value, &validate.Rejection{Code: validate.CodeField, Reason: fmt.Sprintf("partition field %s: %v", t.Spec.Field, ferr)})
			return
		}
		fieldText = bucket.FieldText(v)
	}
	values := t.Spec.Values(ts, fieldText)
	path := bucket.Path(values)
	key := envelope.Key(t.Name, t.Generation, path)
	row := envelope.Row{Offset: ctx.Offset(), Timestamp: ts.UnixMilli(), SchemaID: id, Payload: payload}

	p.mu.Lock()
	b := p.batches[key]
	if b == nil {
		b = &pending{batch: envelope.Batch{Table: t.Name, Generation: t.Generation, Path: path, Partitions: values, Source: src}, since: time.Now()}
		p.batches[key] = b
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	b.batch.Rows = append(b.batch.Rows, row)
	b.bytes += len(payload) + 16
	if n := len(b.entries); n == 0 || b.entries[n-1] != e {
		p.acks.Hold(e)
		b.entries = append(b.entries, e)
	}
	if len(b.batch.Rows) >= in.cfg.BatchRows || b.bytes >= in.cfg.BatchBytes {
		delete(p.batches, key)
		p.produce(b)
	}
	p.mu.Unlock()
}

// deadLetter sends a record that cannot become a row to the topic's dead-letter topic, with the reason and
// the record's source in headers; the record is acknowledged once the dead letter is in Kafka.
func (p *part) deadLetter(ctx goka.Context, e *acks.Entry, value []byte, rej *validate.Rejection) {
	in := p.in
	in.cfg.Metrics.dlq.WithLabelValues(in.cfg.Table.Topic, rej.Code).Inc()
	in.cfg.Log.Warn("record sent to the dead-letter topic", "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", rej.Error())
	var key []byte
	if k := ctx.Key(); k != "" {
		key = []byte(k)
	}
	// The record's own time goes in a header: franz-go measures its delivery timeout from Timestamp.
	rec := &kgo.Record{Topic: in.cfg.DLQTopic, Key: key, Value: value, Partition: -1, Headers: []kgo.RecordHeader{
		{Key: "minipipe.error.code", Value: []byte(rej.Code)},
		{Key: "minipipe.error.reason", Value: []byte(rej.Reason)},
		{Key: "minipipe.source.topic", Value: []byte(in.cfg.Table.Topic)},
		{Key: "minipipe.source.partition", Value: []byte(strconv.Itoa(int(ctx.Partition())))},
		{Key: "minipipe.source.offset", Value: []byte(strconv.FormatInt(ctx.Offset(), 10))},
		{Key: "minipipe.source.timestamp", Value: []byte(strconv.FormatInt(ctx.Timestamp().UnixMilli(), 10))},
	}}
	p.acks.Hold(e)
	in.cfg.Producer.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			err = fmt.Errorf("producing a dead letter to %s: %w", in.cfg.DLQTopic, err)
		}
		p.acks.Release(e, err)
	})
}

// Metrics are the ingest stage's Prometheus metrics, shared by every topic's processor.
type Metrics struct {
	records prometheus.Counter
	rows    prometheus.Counter
	batches prometheus.Counter
	skipped prometheus.Counter
	dlq     *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_records_total", Help: "Source records read."}),
		rows:    prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_rows_total", Help: "Rows produced to the repartition topic."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_batches_total", Help: "Row batches produced to the repartition topic."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_ingest_tombstones_total", Help: "Source records without a value, skipped."}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_dlq_records_total", Help: "Records sent to dead-letter topics, by topic and reason."},
			[]string{"topic", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.rows, m.batches, m.skipped, m.dlq)
	}
	return m
}
