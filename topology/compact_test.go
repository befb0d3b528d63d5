package topology_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
)

// TestStackHiveCompact compacts a Hive table's partitions on HDFS while records keep arriving and Trino and
// minipipe's own DuckDB query it in a loop: every query sees each row once and never fewer rows than the one
// before; the partitions end in far fewer files with the same rows; the replaced files are removed after the
// grace period. Then the pipeline is SIGKILLed at every step of a compaction in turn, restarted, and every row
// counted again.
func TestStackHiveCompact(t *testing.T) {
	t.Parallel() // beside the Iceberg tests, after the sequential ones: it mostly waits on Trino and restarts
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := crashTuned(stackConfig(t, brokers, testkit.SharedMetastore(t)))
	cfg.RotateInterval = time.Second
	topic := testkit.Topic(t, "hcompact")
	gen := primedTopic(t, brokers, cfg, topic)
	p := testkit.StartProcess(t, cfg)
	for range 5 {
		gen.produce(300)
		time.Sleep(1500 * time.Millisecond)
	}
	table := tableOf(topic)
	qualified := "hive." + cfg.HiveDatabase + "." + table
	settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute)
	filesOf := func() int {
		t.Helper()
		r, err := testkit.TrinoQuery(trino, `SELECT count(DISTINCT "$path") FROM `+qualified)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(r[0][0])
		return n
	}
	before := filesOf()
	if before < 5 {
		t.Fatalf("only %d files before the compaction", before)
	}
	compact := func(extra ...string) *exec.Cmd {
		args := append([]string{"compact", "--table", table}, testkit.Args(cfg)[1:]...)
		return exec.Command(testkit.Binary(t), append(args, extra...)...)
	}
	base := int(gen.produced.Load())
	stop := make(chan struct{})
	var bad []string
	queries, last, duck := 0, base, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			gen.produce(50)
			r, err := testkit.TrinoQuery(trino, "SELECT count(*), count(DISTINCT id) FROM "+qualified)
			queries++
			if err != nil || len(r) != 1 || r[0][0] != r[0][1] {
				bad = append(bad, fmt.Sprint("trino: ", r, err))
				continue
			}
			n, _ := strconv.Atoi(r[0][0])
			if n < last {
				bad = append(bad, fmt.Sprintf("trino: %d rows after %d", n, last))
			}
			last = n
			// minipipe's own reader, through the manifests.
			dn, dd, err := testkit.CountDistinct(t, cfg.WarehouseURL(), table, "id")
			duck++
			if err != nil || dn != dd || dn < base {
				bad = append(bad, fmt.Sprintf("duckdb: %d rows, %d distinct, %v", dn, dd, err))
			}
		}
	}()
	var out bytes.Buffer
	cmd := compact("--grace", "3s")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	time.Sleep(3 * time.Second) // a few queries and commits after the move too
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("minipipe compact: %v\n%s\n%s", err, out.String(), p.Log())
	}
	t.Logf("minipipe compact:\n%s", strings.TrimSpace(out.String()))
	if len(bad) > 0 {
		t.Fatalf("queries during the compaction saw %v", bad)
	}
	if !strings.Contains(out.String(), "rewritten into") || !strings.Contains(out.String(), "removed the") {
		t.Fatalf("nothing was compacted: %s", out.String())
	}
	t.Logf("%d files before; %d Trino and %d DuckDB queries during the compaction, each row once, never fewer rows than before (%d → %d)",
		before, queries, duck, base, last)
	settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute)
	settle(t, brokers, cfg, topic, int(gen.produced.Load()), time.Minute)
	t.Logf("%d files after (the compacted ones and those committed since)", filesOf())
	r, err := testkit.TrinoQuery(trino, `SELECT DISTINCT regexp_extract("$path", '/(_c[^/]+)/', 1) FROM `+qualified)
	if err != nil || len(r) == 0 || r[0][0] == "" {
		t.Fatalf("Trino does not read the compacted directories: %v %v", r, err)
	}

	// SIGKILL at every step of a compaction; the request is delivered again to the restarted pipeline, and
	// minipipe compact, waiting meanwhile, sees it done.
	p.Stop()
	for _, step := range []string{"compact.staged:1", "compact.intent:1", "compact.published:1", "compact.committed:1"} {
		gen.produce(600)
		k := testkit.StartProcessEnv(t, cfg, []string{"MINIPIPE_FAILPOINT=" + step})
		settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute) // new small files in the compacted partitions
		var out bytes.Buffer
		cmd := compact("--grace", "1s", "--wait", "3m", "--min-files", "2")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !k.WaitExit(2 * time.Minute) {
			t.Fatalf("the failpoint %s never fired:\n%s\n%s", step, out.String(), k.Log())
		}
		if !strings.Contains(k.Log(), "FAILPOINT "+strings.Split(step, ":")[0]) {
			t.Fatalf("minipipe exited, but not at %s:\n%s", step, k.Log())
		}
		p = testkit.StartProcess(t, cfg)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("minipipe compact across the crash at %s: %v\n%s\n%s", step, err, out.String(), p.Log())
		}
		settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute)
		t.Logf("killed at %s: %s", step, strings.ReplaceAll(strings.TrimSpace(out.String()), "\n", "; "))
		p.Stop()
	}
	testkit.StartProcess(t, cfg)
	settle(t, brokers, cfg, topic, int(gen.produced.Load()), time.Minute)
}
