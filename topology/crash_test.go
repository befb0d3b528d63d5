package topology_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

const eventSchema = `{"type":"record","name":"Event","fields":[{"name":"id","type":"long"},{"name":"payload","type":"string"}]}`

// loadGen produces records with unique ids straight to Kafka, as a Confluent producer would.
type loadGen struct {
	t        *testing.T
	cl       *kgo.Client
	topic    string
	id       int
	next     atomic.Int64
	produced atomic.Int64
	// record makes the record of an id (default: an event keyed by id%97 with a payload of varying length).
	record func(id int64) *kgo.Record
}

func newLoadGen(t *testing.T, brokers []string, topic string, schemaID int) *loadGen {
	cl, err := (kafka.Config{Brokers: brokers}).NewProducer("minipipe-loadgen")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	g := &loadGen{t: t, cl: cl, topic: topic, id: schemaID}
	g.record = func(id int64) *kgo.Record {
		return &kgo.Record{Topic: g.topic, Partition: -1, Key: []byte(fmt.Sprint(id % 97)),
			Value: frame(g.t, g.id, eventSchema, fmt.Sprintf(`{"id":%d,"payload":"event %d %s"}`, id, id, strings.Repeat("x", int(id%40))))}
	}
	return g
}

// send writes n records and waits for them.
func (g *loadGen) send(n int) error {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = g.record(g.next.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := g.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	g.produced.Add(int64(n))
	return nil
}

// produce writes n records and waits for them; failing, it fails the test.
func (g *loadGen) produce(n int) {
	g.t.Helper()
	if err := g.send(n); err != nil {
		g.t.Fatalf("producing: %v", err)
	}
}

func tableOf(topic string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(topic) }

// settle waits until the table holds every record of its topic once, and checks nothing is left staged.
func settle(t *testing.T, brokers []string, cfg topology.Config, topic string, distinct int, timeout time.Duration) {
	t.Helper()
	want := int(testkit.EndOffsets(t, brokers, topic))
	wh := cfg.WarehouseURL()
	var n, d int
	var err error
	start := time.Now()
	waitRows(t, timeout, want, func() int {
		n, _, err = testkit.CountDistinct(t, wh, tableOf(topic), "id")
		if err != nil {
			return -1
		}
		return n
	})
	waited := time.Since(start)
	// Give a duplicate every chance to show up before judging.
	time.Sleep(cfg.RotateInterval + time.Second)
	start = time.Now()
	n, d, err = testkit.CountDistinct(t, wh, tableOf(topic), "id")
	if err != nil {
		t.Fatalf("counting: %v", err)
	}
	t.Logf("topic holds %d records (%d distinct ids produced); table: count %d, count distinct %d (all rows after %s; a count takes %s)",
		want, distinct, n, d, waited.Round(100*time.Millisecond), time.Since(start).Round(10*time.Millisecond))
	if n < want && d == n {
		explainShortfall(t, brokers, topic, tableOf(topic), want, func(sql string) ([][]string, error) { return testkit.Query(t, wh, sql) }, "", "")
	}
	if n != want || d != distinct {
		t.Fatalf("exactly once violated: %d rows, %d distinct ids; the topic holds %d records with %d distinct ids", n, d, want, distinct)
	}
	if left := testkit.StagingFiles(t, wh); len(left) > 0 {
		t.Fatalf("staging files left: %v", left)
	}
}

// waitRows waits until count reaches want. A pipeline behind on a slow machine is not a failure: the wait
// goes on, up to three times timeout, as long as the count rose within the last timeout; it ends when it
// stands still that long (rows lost, or stuck).
func waitRows(t *testing.T, timeout time.Duration, want int, count func() int) {
	t.Helper()
	start := time.Now()
	last, lastRise := -1, time.Now()
	for time.Since(start) < 3*timeout {
		n := count()
		if n >= want {
			return
		}
		if n > last {
			last, lastRise = n, time.Now()
		} else if time.Since(lastRise) > timeout {
			return
		}
		time.Sleep(time.Second)
	}
	t.Logf("the table still gained rows after %s: %d of %d", 3*timeout, last, want)
}

func crashConfig(t *testing.T, brokers []string) topology.Config {
	return crashTuned(testkit.TestConfig(t, brokers))
}

// crashTuned makes commits frequent (small files, short rotation, two commit partitions), so that every
// failpoint is reached within seconds.
func crashTuned(cfg topology.Config) topology.Config {
	cfg.FlushSize = 400
	cfg.RotateInterval = 2 * time.Second
	cfg.RowsPartitions = 2
	return cfg
}

// primedTopic creates topic with 3 partitions, registers the test schema through a minipipe that is then
// killed, and fills the topic with 1500 records before the crash steps begin.
func primedTopic(t *testing.T, brokers []string, cfg topology.Config, topic string) *loadGen {
	t.Helper()
	testkit.CreateTopic(t, brokers, topic, 3)
	first := testkit.StartProcess(t, cfg)
	id := registerSchema(t, first.Registry, topic+"-value", eventSchema)
	first.Kill()
	gen := newLoadGen(t, brokers, topic, id)
	gen.produce(1500)
	return gen
}

// killAt starts minipipe with a failpoint that SIGKILLs it at step (NAME:N, the Nth time it passes there),
// calls during, if given, while it waits, and fails the test unless the process died at that step.
func killAt(t *testing.T, cfg topology.Config, step string, during func()) {
	t.Helper()
	p := testkit.StartProcessEnv(t, cfg, []string{"MINIPIPE_FAILPOINT=" + step})
	for deadline := time.Now().Add(90 * time.Second); !p.WaitExit(300 * time.Millisecond); {
		if time.Now().After(deadline) {
			t.Fatalf("the failpoint %s never fired:\n%s", step, p.Log())
		}
		if during != nil {
			during()
		}
	}
	if !strings.Contains(p.Log(), "FAILPOINT "+strings.Split(step, ":")[0]) {
		t.Fatalf("minipipe exited, but not at %s:\n%s", step, p.Log())
	}
}

// TestCrashAtEveryCommitStep kills minipipe with SIGKILL at each step of the commit protocol in turn (and
// in the middle of the recovery that follows), restarts it, and counts every row: no loss, no duplicate,
// no staging file left.
func TestCrashAtEveryCommitStep(t *testing.T) {
	brokers := testkit.Kafka(t)
	crashAtEveryStep(t, brokers, crashConfig, "crash", false)
}

// crashAtEveryStep runs the crash cases, each on a configuration of newConfig's and a topic of its own, two at a
// time when parallel (each mostly waits for restarts and rotations).
func crashAtEveryStep(t *testing.T, brokers []string, newConfig func(*testing.T, []string) topology.Config, name string, parallel bool) {
	cases := [][]string{
		{"commit.staged:3"},
		{"commit.intent:3"},
		{"commit.published:3"},
		{"commit.committed:3"},
		{"commit.acked:3"},
		{"commit.intent:2", "recover.claimed:1"},
		{"commit.published:2", "recover.settled:1"},
	}
	for _, steps := range cases {
		t.Run(strings.Join(steps, ","), func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			cfg := newConfig(t, brokers)
			topic := testkit.Topic(t, name)
			gen := primedTopic(t, brokers, cfg, topic)
			for _, step := range steps {
				killAt(t, cfg, step, nil)
				gen.produce(300)
			}
			testkit.StartProcess(t, cfg)
			settle(t, brokers, cfg, topic, int(gen.produced.Load()), 2*time.Minute)
		})
	}
}

// TestCrashUnderLoad kills minipipe at random moments while records keep arriving, and counts.
func TestCrashUnderLoad(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := crashConfig(t, brokers)
	cfg.FlushSize = 2000
	topic := testkit.Topic(t, "load")
	produced := crashUnderLoad(t, brokers, cfg, topic, 6)
	settle(t, brokers, cfg, topic, produced, 3*time.Minute)
}

// crashUnderLoad creates topic, keeps producing to it, and meanwhile SIGKILLs and restarts minipipe kills
// times at random moments; it returns how many records were produced (each with a distinct id).
func crashUnderLoad(t *testing.T, brokers []string, cfg topology.Config, topic string, kills int) int {
	t.Helper()
	testkit.CreateTopic(t, brokers, topic, 4)
	p := testkit.StartProcess(t, cfg)
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)
	gen := newLoadGen(t, brokers, topic, id)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			gen.produce(500)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(1500+rng.Intn(4000)) * time.Millisecond)
		p.Kill()
		t.Logf("kill %d after %d records produced", i+1, gen.produced.Load())
		p = testkit.StartProcess(t, cfg)
	}
	close(stop)
	wg.Wait()
	return int(gen.produced.Load())
}

// TestBrokerRestart restarts the broker in the middle of a stream (its own broker, not the shared one).
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own broker")
	}
	broker := testkit.StartKafka(t)
	brokers := broker.Brokers()
	cfg := crashConfig(t, brokers)
	topic := testkit.Topic(t, "bounce")
	testkit.CreateTopic(t, brokers, topic, 2)
	p := testkit.StartProcess(t, cfg)
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)
	gen := newLoadGen(t, brokers, topic, id)
	gen.produce(3000)
	if err := broker.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	gen.produce(3000)
	if err := broker.Stop(); err != nil { // a controlled shutdown too
		t.Fatal(err)
	}
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	gen.produce(2000)
	settle(t, brokers, cfg, topic, int(gen.produced.Load()), 3*time.Minute)
	if !strings.Contains(p.Log(), "level=") {
		t.Log(p.Log())
	}
}

func mustFS(t *testing.T, url string) fs.FS {
	t.Helper()
	f, err := fs.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
