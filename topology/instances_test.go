package topology_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/yaml"

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
func manyInstances(t *testing.T, base topology.Config, brokers []string, launch starter) (topology.Config, string, int) {
	base.FlushSize = 2000
	if base.RotateInterval < time.Second || base.RotateInterval > 5*time.Second {
		base.RotateInterval = time.Second // unless the test asks for a longer one (S3: fewer, larger files)
	}
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
		procs[i] = launch(t, cfgs[i])
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
	procs[victim] = launch(t, cfgs[victim])

	// 3. A fourth joins.
	time.Sleep(3 * time.Second)
	fourth := instanceOf(t, base)
	procs = append(procs, launch(t, fourth))
	cfgs = append(cfgs, fourth)
	t.Logf("a fourth instance joined at %d records", gen.produced.Load())

	// 4. One is stopped the way a rolling restart does it, and started again.
	time.Sleep(3 * time.Second)
	term := (frozen + 2) % 3
	procs[term].Stop()
	t.Logf("stopped instance %d (SIGTERM) at %d records", term, gen.produced.Load())
	procs[term] = launch(t, cfgs[term])
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

// starter starts one instance of the pipeline, with its own data directory and addresses in cfg.
type starter func(t *testing.T, cfg topology.Config) *testkit.Proc

// withFlags starts instances with every setting as a flag.
func withFlags(t *testing.T, cfg topology.Config) *testkit.Proc { return testkit.StartProcess(t, cfg) }

// TestManyInstances: three, then four instances of one pipeline on a local warehouse, frozen, killed,
// joined and restarted under load; every record is one row, and every file is in the manifest. The instances
// run on the config file the Helm chart (deploy/helm/minipipe) renders into its ConfigMap, as its pods do: only
// their data directories and listener addresses (a pod's own) are flags.
func TestManyInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	tc := testkit.TestConfig(t, brokers)
	file := chartConfig(t, map[string]any{
		"auth":               map[string]any{"insecureNoAuth": true},
		"allowFileWarehouse": true, // the instances share this machine's folder, as pods would a shared volume
		"config": map[string]any{
			"log-level": tc.LogLevel,
			"brokers":   tc.Brokers, "pipeline-name": tc.PipelineName, "topics": tc.Topics,
			"registry-topic": tc.RegistryTopic, "console-topic": tc.ConsoleTopic,
			"warehouse": tc.WarehouseURL(), "catalog": "none", "log-format": "text", "memory-limit": "1600MiB",
			// what manyInstances sets for the test's pace
			"flush-size": 2000, "rotate-interval": "1s", "rows-partitions": 4, "manifest-checkpoint-every": 3, "timestamp-field": "ts",
		},
		"rotateIntervalSeconds": 1,
	})
	base, err := topology.LoadConfigFile(file)
	if err != nil {
		t.Fatalf("the chart's config file: %v", err)
	}
	if base.FlushSize != 2000 || base.RotateInterval != time.Second || base.RowsPartitions != 4 || base.CheckpointEvery != 3 ||
		base.TimestampField != "ts" || base.PipelineName != tc.PipelineName || base.Warehouse != tc.WarehouseURL() {
		t.Fatalf("the chart's config file reads as %+v", base)
	}
	fromFile := func(t *testing.T, cfg topology.Config) *testkit.Proc { return testkit.StartConfigFile(t, cfg, file) }
	cfg, topic, produced := manyInstances(t, base, brokers, fromFile)
	settle(t, brokers, cfg, topic, produced, 3*time.Minute)
	filesMatchManifest(t, mustFS(t, cfg.WarehouseURL()), tableOf(topic))
}

// chartConfig renders deploy/helm/minipipe with values and returns the config file of its ConfigMap, written
// to a temporary file.
func chartConfig(t *testing.T, values map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	vb, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	vf := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(vf, vb, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.Helm(t), "template", "rel", filepath.Join(testkit.Root(), "deploy", "helm", "minipipe"),
		"--kube-version", "1.33.0", "--show-only", "templates/configmap.yaml", "-f", vf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var cm struct {
		Kind string
		Data map[string]string
	}
	if err := yaml.Unmarshal(out, &cm); err != nil || cm.Kind != "ConfigMap" || cm.Data["minipipe.yaml"] == "" {
		t.Fatalf("helm template gave no config file (%v):\n%s", err, out)
	}
	file := filepath.Join(dir, "minipipe.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["minipipe.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("the chart's config file:\n%s", cm.Data["minipipe.yaml"])
	return file
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

// TestShutdownDelay: on SIGTERM with --shutdown-delay (the chart sets it), /readyz answers 503 while every API
// still serves, so that Kubernetes takes the pod out of its Services before its listeners close; then the
// process stops.
func TestShutdownDelay(t *testing.T) {
	brokers := testkit.Kafka(t)
	p := testkit.StartProcess(t, testkit.TestConfig(t, brokers), "--shutdown-delay", "3s")
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(p.HTTP + "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before the stop", code)
	}
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		code, body := get(p.HTTP + "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Since(sent) > 2*time.Second {
			t.Fatalf("/readyz %d %q 2 s after SIGTERM", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(p.Registry + "/subjects"); code != http.StatusOK {
		t.Fatalf("the registry during the shutdown delay: %d %s", code, body)
	}
	if code, _ := get(p.HTTP + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during the shutdown delay: %d", code)
	}
	if !p.WaitExit(60 * time.Second) {
		t.Fatal("still running 60 s after SIGTERM")
	}
	if d := time.Since(sent); d < 3*time.Second {
		t.Fatalf("exited %s after SIGTERM, before the 3 s delay", d)
	}
	t.Logf("exited %s after SIGTERM", time.Since(sent).Round(100*time.Millisecond))
}
