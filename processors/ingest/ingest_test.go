package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
)

// fakeRows is the repartition topic's producer, driven by the test: every send waits until the test
// decides its outcome, in send order, as an idempotent producer delivers one partition.
type fakeRows struct {
	mu    sync.Mutex
	limit int
	queue []send
}

type send struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

func (f *fakeRows) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, send{r, promise})
}

func (f *fakeRows) MaxBytes() int                        { return f.limit }
func (f *fakeRows) Refresh(context.Context) (int, error) { return f.limit, nil }

func (f *fakeRows) next() (send, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return send{}, false
	}
	s := f.queue[0]
	f.queue = f.queue[1:]
	return s, true
}

// TestChainsUnderProduceFailures sends rows of two table partitions through a part whose produces fail at
// random (retriable errors, errors after the record landed, batches too large for the topic, single rows
// too large), delivers what lands to a model of the commit stage's rule (a batch linked to an unseen row is
// dropped; rows at or below what was seen are duplicates), and checks at the end that every row is in the
// table exactly once or in the dead-letter topic, and that every record was acknowledged, in order, and
// only once all it became was in Kafka.
func TestChainsUnderProduceFailures(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { chainScenario(t, seed) })
	}
}

func chainScenario(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "src.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dlqClient, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer dlqClient.Close()

	rows := &fakeRows{limit: 4000}
	in := New(Config{Table: Feed{Table: layout.Table{Name: "t", Topic: "src"}, Generation: 1}, RowsTopic: "rows", Rows: rows, Producer: dlqClient,
		RetryBackoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := in.newPart(0, ctx)

	var ackMu sync.Mutex
	var acked []int64
	var ackErrs, early int
	offset := int64(0)
	table := map[int64]int{}
	sizes := map[int64]int{}
	// produceBatch gathers n rows of one table partition and sends them, as process does.
	produceBatch := func(path string, n int) {
		b := &pending{batch: envelope.Batch{Table: "t", Generation: 1, Path: path, Source: envelope.Source{Topic: "src", Partition: 0}}, since: time.Now()}
		for i := 0; i < n; i++ {
			o := offset
			offset++
			size := 10 + rng.IntN(300)
			if rng.IntN(60) == 0 {
				size = 5000 // larger than the topic takes, even alone
			}
			sizes[o] = size
			e := p.acks.Push(func(err error) {
				ackMu.Lock()
				defer ackMu.Unlock()
				if err != nil {
					ackErrs++
				}
				if sizes[o] <= rows.limit && table[o] != 1 {
					early++ // acknowledged before its row landed: a crash now would lose it
				}
				acked = append(acked, o)
			})
			b.batch.Rows = append(b.batch.Rows, envelope.Row{Offset: o, SchemaID: 1, Payload: make([]byte, size)})
			p.acks.Hold(e)
			b.entries = append(b.entries, e)
			b.keys = append(b.keys, "")
			p.acks.Release(e, nil)
		}
		p.mu.Lock()
		p.hold(b.rowBytes())
		p.produce(b)
		p.mu.Unlock()
	}

	// The commit stage's view of what landed.
	seen := map[string]int64{}
	land := func(r *kgo.Record) {
		b, err := envelope.DecodeBatch(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		key := string(r.Key)
		last, ok := seen[key]
		if !ok {
			last = -1
		}
		if b.Prev > last {
			return // after a lost batch: dropped
		}
		for _, row := range b.Rows {
			if row.Offset > last {
				table[row.Offset]++
				last = row.Offset
			}
		}
		seen[key] = last
	}
	deliver := func(failing bool) bool {
		s, ok := rows.next()
		if !ok {
			return false
		}
		size := len(s.rec.Key) + len(s.rec.Value)
		switch {
		case size > rows.limit:
			s.promise(s.rec, kerr.MessageTooLarge)
		case failing && rng.IntN(4) == 0:
			s.promise(s.rec, kgo.ErrRecordTimeout)
		case failing && rng.IntN(8) == 0:
			land(s.rec) // it landed, but the client gave up waiting
			s.promise(s.rec, kgo.ErrRecordTimeout)
		default:
			land(s.rec)
			s.promise(s.rec, nil)
		}
		return true
	}

	paths := []string{"dt=a", "dt=b"}
	for step := 0; step < 200; step++ {
		switch rng.IntN(3) {
		case 0:
			produceBatch(paths[rng.IntN(2)], 1+rng.IntN(20))
		default:
			deliver(true)
		}
		if rng.IntN(5) == 0 {
			time.Sleep(2 * time.Millisecond)
			p.tick()
		}
	}
	// Failures stop: everything drains.
	deadline := time.Now().Add(20 * time.Second)
	for {
		time.Sleep(2 * time.Millisecond)
		p.tick()
		for deliver(false) {
		}
		if p.acks.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			p.mu.Lock()
			t.Fatalf("not drained: %d unacknowledged, %d chains waiting", p.acks.Len(), p.retries)
		}
	}

	dead := map[int64]bool{}
	fetch := func() {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("src.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		want := 0
		for _, size := range sizes {
			if size > rows.limit {
				want++
			}
		}
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer fcancel()
		for len(dead) < want {
			fs := cl.PollFetches(fctx)
			if fctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == "minipipe.source.offset" {
						var o int64
						fmt.Sscan(string(h.Value), &o)
						dead[o] = true
					}
				}
			})
		}
	}
	fetch()
	for o := int64(0); o < offset; o++ {
		n := table[o]
		switch {
		case sizes[o] > rows.limit && (n != 0 || !dead[o]):
			t.Fatalf("row %d of %d bytes: %d times in the table, dead letter %v", o, sizes[o], n, dead[o])
		case sizes[o] <= rows.limit && (n != 1 || dead[o]):
			t.Fatalf("row %d: %d times in the table (dead letter %v)", o, n, dead[o])
		}
	}
	if p.pending != 0 {
		t.Fatalf("%d bytes still counted as pending", p.pending)
	}
	if early > 0 {
		t.Fatalf("%d records acknowledged before their rows landed", early)
	}
	t.Logf("%d rows, %d dead letters, %d resends, %d splits", offset, len(dead), int(testutilCount(in.cfg.Metrics.retries)), int(testutilCount(in.cfg.Metrics.splits)))
	if ackErrs != 0 || len(acked) != int(offset) || !sort.SliceIsSorted(acked, func(i, j int) bool { return acked[i] < acked[j] }) {
		t.Fatalf("acknowledged %d of %d records (%d with errors), in order: %v", len(acked), offset, ackErrs,
			sort.SliceIsSorted(acked, func(i, j int) bool { return acked[i] < acked[j] }))
	}
}

func testutilCount(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

type kgoRows struct{ cl *kgo.Client }

func (k kgoRows) Produce(ctx context.Context, r *kgo.Record, p func(*kgo.Record, error)) {
	k.cl.Produce(ctx, r, p)
}
func (k kgoRows) MaxBytes() int                        { return 1 << 20 }
func (k kgoRows) Refresh(context.Context) (int, error) { return 1 << 20, nil }

// TestFullProducerBufferDoesNotDeadlock (from an adversarial review): the repartition topic stalls long
// enough to fill the producer's buffer; the goroutine that holds the partition's lock waits in Produce for
// room, which only the producer's promises make, and they must not wait for that lock.
func TestFullProducerBufferDoesNotDeadlock(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1)) // the topic is missing: every record waits, then fails
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.MaxBufferedRecords(2),
		kgo.RecordDeliveryTimeout(time.Second), kgo.UnknownTopicRetries(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	in := New(Config{Table: Feed{Table: layout.Table{Name: "t", Topic: "src"}, Generation: 1}, RowsTopic: "rows", Rows: kgoRows{cl},
		RetryBackoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := in.newPart(0, ctx)
	done := make(chan struct{})
	go func() {
		for i, path := range []string{"dt=a", "dt=b", "dt=c", "dt=d"} { // the third finds the buffer full
			b := &pending{batch: envelope.Batch{Table: "t", Generation: 1, Path: path, Source: envelope.Source{Topic: "src"}}, since: time.Now()}
			e := p.acks.Push(func(error) {})
			b.batch.Rows = append(b.batch.Rows, envelope.Row{Offset: int64(i), SchemaID: 1, Payload: []byte("x")})
			b.entries, b.keys = append(b.entries, e), append(b.keys, "")
			p.mu.Lock()
			p.produce(b)
			p.mu.Unlock()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: Produce waits for buffer room with the partition's lock held, and the promise that frees it waits for that lock")
	}
}
