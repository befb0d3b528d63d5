package topology_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// Many instances of one pipeline sharing the work: real processes on one broker and one warehouse.

// instanceOf is another instance of the pipeline of base: the same pipeline name, registry, topics and
// warehouse; its own data directory and ports.
func instanceOf(t *testing.T, base topology.Config) topology.Config {
	c := base
	c.DataDir = t.TempDir()
	c.RestAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	c.RegistryAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	c.HTTPAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	return c
}

// newSpreadGen produces records whose timestamps fall on eight days, so that rows spread over eight table
// partitions and so over the commit partitions.
func newSpreadGen(t *testing.T, brokers []string, topic string, schemaID int) *loadGen {
	g := newLoadGen(t, brokers, topic, schemaID)
	g.record = func(id int64) *kgo.Record {
		day := time.Date(2026, 11, 1+int(id%8), 12, 0, 0, 0, time.UTC)
		return &kgo.Record{Topic: g.topic, Partition: -1, Key: []byte(fmt.Sprint(id % 101)),
			Value: frame(g.t, g.id, tsSchema, fmt.Sprintf(`{"id":%d,"ts":%d,"payload":"event %d"}`, id, day.UnixMilli(), id))}
	}
	return g
}

// steady produces about rate records a second until the returned stop is called.
func (g *loadGen) steady(rate int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if err := g.send(rate / 10); err != nil {
				g.t.Errorf("producing: %v", err)
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// manifestHeads returns, per commit partition, the highest record number of its manifest.
func manifestHeads(t *testing.T, wh fs.FS, rowsTopic string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	root := fs.Join("_minipipe", "manifests", rowsTopic)
	parts, err := wh.ReadDir(root)
	if err != nil {
		return out
	}
	for _, p := range parts {
		es, err := wh.ReadDir(fs.Join(root, p.Name))
		if err != nil {
			continue
		}
		for _, e := range es {
			if n, err := strconv.ParseUint(strings.TrimSuffix(e.Name, ".mf"), 10, 64); err == nil && n > out[p.Name] {
				out[p.Name] = n
			}
		}
	}
	return out
}

// checkpointsSince counts, per commit partition that has one, the checkpoint records after record since[p].
func checkpointsSince(t *testing.T, wh fs.FS, rowsTopic string, since map[string]uint64) map[string]int {
	t.Helper()
	out := map[string]int{}
	root := fs.Join("_minipipe", "manifests", rowsTopic)
	for p, from := range since {
		es, err := wh.ReadDir(fs.Join(root, p))
		if err != nil {
			continue
		}
		for _, e := range es {
			n, err := strconv.ParseUint(strings.TrimSuffix(e.Name, ".mf"), 10, 64)
			if err != nil || n <= from {
				continue
			}
			b, err := wh.ReadFile(fs.Join(root, p, e.Name))
			if err != nil {
				continue // removed by a compaction meanwhile
			}
			if r, err := manifest.Decode(b); err == nil && r.Kind == manifest.Checkpoint {
				out[p]++
			}
		}
	}
	return out
}

// filesMatchManifest checks that every Parquet file under the table's directory is one the manifests
// count, partition by partition (a zombie's file would be one too many).
func filesMatchManifest(t *testing.T, wh fs.FS, table string) {
	t.Helper()
	tables, err := topology.ListTables(wh)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	var location string
	for _, ti := range tables {
		if ti.Name == table {
			location = ti.Location
			for _, p := range ti.Partitions {
				want[p.Path] = p.Files
			}
		}
	}
	if location == "" {
		t.Fatalf("table %s is not in the manifests", table)
	}
	got := map[string]int64{}
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		es, err := wh.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			switch {
			case e.IsDir:
				walk(fs.Join(dir, e.Name), strings.TrimPrefix(rel+"/"+e.Name, "/"))
			case strings.HasSuffix(e.Name, ".parquet"):
				got[rel]++
			}
		}
	}
	walk(location, "")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Parquet files under %s by partition %v; the manifests count %v", location, got, want)
	}
	t.Logf("%d partitions; every Parquet file of the table is in a manifest", len(got))
}

// busiest is an instance that holds open files in the commit stage (the most, of a few looks).
func busiest(procs []*testkit.Proc) int {
	best, bestN := 0, -1.0
	for look := 0; look < 40 && bestN <= 0; look++ {
		for i, p := range procs {
			if n := p.Metric("minipipe_commit_open_files"); n > bestN {
				best, bestN = i, n
			}
		}
		if bestN <= 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return best
}

// manyInstances runs three instances of one pipeline on a 12-partition topic under steady load and puts
// them through what production does to them: the committing instance frozen (SIGSTOP) past the session
// timeout and past two manifest checkpoints of every busy commit partition, then woken; another killed
// (SIGKILL) and restarted; a fourth joining; one stopped (SIGTERM) and restarted. It returns the
// configuration and the number of records produced, each with its own id.
func manyInstances(t *testing.T, base topology.Config, brokers []string) (topology.Config, string, int) {
	base.FlushSize = 2000
	base.RotateInterval = time.Second
	base.RowsPartitions = 4
	base.CheckpointEvery = 3
	base.TimestampField = "ts"
	base.Warehouse = base.WarehouseURL()
	topic := testkit.Topic(t, "many")
	testkit.CreateTopic(t, brokers, topic, 12)

	procs := make([]*testkit.Proc, 3)
	cfgs := make([]topology.Config, 3)
	for i := range procs {
		cfgs[i] = instanceOf(t, base)
		procs[i] = testkit.StartProcess(t, cfgs[i])
	}
	id := registerSchema(t, procs[0].Registry, topic+"-value", tsSchema)
	gen := newSpreadGen(t, brokers, topic, id)
	stop := gen.steady(2000)
	defer stop()
	wh := mustFS(t, base.WarehouseURL())
	rows := topology.Names{Pipeline: base.PipelineName}.RowsTopic()

	// Let every instance take its share and commit.
	time.Sleep(8 * time.Second)

	// 1. A committer with files open freezes, well past the session timeout and past two checkpoints of every
	// commit partition that others keep committing to, while load goes on.
	frozen := busiest(procs)
	files := procs[frozen].Metric("minipipe_commit_open_files")
	heads := manifestHeads(t, wh, rows)
	if err := procs[frozen].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("froze instance %d (%.0f files open) at %d records", frozen, files, gen.produced.Load())
	start := time.Now()
	for {
		time.Sleep(time.Second)
		cps := checkpointsSince(t, wh, rows, heads)
		done := time.Since(start) > 15*time.Second
		for p := range heads {
			if cps[p] < 2 {
				done = false
			}
		}
		if done {
			t.Logf("frozen for %s; checkpoints since: %v", time.Since(start).Round(time.Second), cps)
			break
		}
		// On HDFS a partition taken from a frozen owner that was writing a file waits for the NameNode to
		// recover that file's lease: the frozen client stops renewing it and the soft limit is 60 s (seen:
		// two checkpoints of every partition after 64 s with 33 files open; a run at 90 s failed once).
		if time.Since(start) > 150*time.Second {
			t.Fatalf("commit partitions did not pass two checkpoints in 150s: %v (heads %v)", cps, heads)
		}
	}
	if err := procs[frozen].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)

	// 2. Another is killed and restarted.
	victim := (frozen + 1) % 3
	procs[victim].Kill()
	t.Logf("killed instance %d at %d records", victim, gen.produced.Load())
	time.Sleep(2 * time.Second)
	procs[victim] = testkit.StartProcess(t, cfgs[victim])

	// 3. A fourth joins.
	time.Sleep(3 * time.Second)
	fourth := instanceOf(t, base)
	procs = append(procs, testkit.StartProcess(t, fourth))
	cfgs = append(cfgs, fourth)
	t.Logf("a fourth instance joined at %d records", gen.produced.Load())

	// 4. One is stopped the way a rolling restart does it, and started again.
	time.Sleep(3 * time.Second)
	term := (frozen + 2) % 3
	procs[term].Stop()
	t.Logf("stopped instance %d (SIGTERM) at %d records", term, gen.produced.Load())
	procs[term] = testkit.StartProcess(t, cfgs[term])
	time.Sleep(5 * time.Second)
	stop()
	t.Logf("%d records produced", gen.produced.Load())
	if log := procs[frozen].Log(); strings.Contains(log, "no longer owns") || strings.Contains(log, "fenced by a newer owner") {
		t.Logf("the frozen instance woke up, tried to commit the files it had open, and was fenced")
	} else {
		t.Logf("the frozen instance had no file open to commit when it woke")
	}
	for i, p := range procs {
		select {
		case <-p.Exited():
			t.Fatalf("instance %d exited:\n%s", i, p.Log())
		default:
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logStageMetrics(t, procs)
		}
	})
	return base, topic, int(gen.produced.Load())
}

// TestManyInstances: three, then four instances of one pipeline on a local warehouse, frozen, killed,
// joined and restarted under load; every record is one row, and every file is in the manifest.
func TestManyInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg, topic, produced := manyInstances(t, testkit.TestConfig(t, brokers), brokers)
	settle(t, brokers, cfg, topic, produced, 3*time.Minute)
	filesMatchManifest(t, mustFS(t, cfg.WarehouseURL()), tableOf(topic))
}

// TestStackManyInstances: the same on HDFS with the Hive Metastore, counted through Trino.
func TestStackManyInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg, topic, produced := manyInstances(t, stackConfig(t, brokers, testkit.SharedMetastore(t)), brokers)
	table := "hive." + cfg.HiveDatabase + "." + tableOf(topic)
	settleTrino(t, brokers, cfg, trino, table, topic, produced, 3*time.Minute)
	filesMatchManifest(t, mustFS(t, cfg.WarehouseURL()), tableOf(topic))
}

// TestMisconfiguredInstances: an instance of a pipeline pointed at another warehouse than the pipeline
// writes refuses to start and says why; so does a warehouse of another Kafka cluster.
func TestMisconfiguredInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	base := testkit.TestConfig(t, brokers)
	base.Warehouse = base.WarehouseURL()
	testkit.StartProcess(t, instanceOf(t, base))
	other := instanceOf(t, base)
	other.Warehouse = "" // the default: a warehouse under its own data directory
	err := runUntilExit(t, other, 60*time.Second)
	if err == nil || !strings.Contains(err.Error(), "must share the warehouse") {
		t.Fatalf("an instance with its own warehouse: %v", err)
	}
	t.Logf("refused: %v", err)

	// A warehouse written for this cluster, used by a pipeline on another cluster.
	broker2 := testkit.StartKafka(t)
	foreign := testkit.TestConfig(t, broker2.Brokers())
	foreign.Warehouse = base.Warehouse
	err = runUntilExit(t, foreign, 60*time.Second)
	if err == nil || !strings.Contains(err.Error(), "belongs to Kafka cluster") {
		t.Fatalf("a warehouse of another cluster: %v", err)
	}
	t.Logf("refused: %v", err)
}

// runUntilExit runs minipipe in-process until it stops by itself and returns its error.
func runUntilExit(t *testing.T, cfg topology.Config, timeout time.Duration) error {
	t.Helper()
	app, err := topology.NewApp(cfg, quietLog())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = app.Run(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("minipipe kept running for %s", timeout)
	}
	return err
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logStageMetrics logs what each instance's stages counted, to explain a failure.
func logStageMetrics(t *testing.T, procs []*testkit.Proc) {
	for i, p := range procs {
		var b strings.Builder
		for _, m := range []string{"minipipe_ingest_records_total", "minipipe_ingest_batches_total", "minipipe_ingest_produce_retries_total",
			"minipipe_bucket_seals_total", "minipipe_commit_rows_total", "minipipe_commit_files_total", "minipipe_commit_open_files",
			"minipipe_commit_duplicates_dropped_total", "minipipe_commit_batches_after_gap_total", "minipipe_commit_dead_letters_total"} {
			fmt.Fprintf(&b, " %s=%.0f", strings.TrimPrefix(m, "minipipe_"), p.Metric(m))
		}
		for _, r := range []string{"schema", "open-files", "revoked", "overdue"} {
			fmt.Fprintf(&b, " unplanned_%s=%.0f", r, p.Metric("minipipe_commit_unplanned_ends_total", `reason="`+r+`"`))
		}
		t.Logf("instance %d (%s):%s", i, p.Config.RestAddr, b.String())
	}
}
