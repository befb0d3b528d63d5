package topology_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

const tsSchema = `{"type":"record","name":"Event","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"payload","type":"string"}]}`

// TestReplay rebuilds a table from its topic while records keep arriving: queries see the old generation
// during the rebuild, the new one after the atomic swap, and the new one holds exactly the rows of the
// topic.
func TestReplay(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	cfg.FlushSize = 3000
	cfg.TimestampField = "ts"
	app := testkit.StartApp(t, cfg)
	topic := testkit.Topic(t, "replay")
	testkit.CreateTopic(t, brokers, topic, 3)
	id := registerSchema(t, app.Registry, topic+"-value", tsSchema)
	table := tableOf(topic)
	wh := cfg.WarehouseURL()

	next := 0
	produce := func(n int) {
		var values [][]byte
		for i := 0; i < n; i++ {
			next++
			day := time.Date(2026, 11, 20+next%5, 12, 0, 0, 0, time.UTC)
			values = append(values, frame(t, id, tsSchema, fmt.Sprintf(`{"id":%d,"ts":%d,"payload":"p%d"}`, next, day.UnixMilli(), next)))
		}
		produceRaw(t, brokers, topic, values...)
	}
	produce(6000)
	testkit.WaitQuery(t, wh, "SELECT count(*) FROM "+table, 60*time.Second, func(r [][]string) bool { return r[0][0] == "6000" })
	before, err := testkit.Query(t, wh, fmt.Sprintf("SELECT dt, count(*), sum(id) FROM %s GROUP BY dt ORDER BY dt", table))
	if err != nil {
		t.Fatal(err)
	}

	// Replay while more records arrive.
	var out bytes.Buffer
	var wg sync.WaitGroup
	var replayErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		replayErr = topology.RunReplay(context.Background(), cfg, table, &out, time.Second)
	}()
	sawOld := false
	for i := 0; i < 20; i++ {
		produce(200)
		if _, err := os.Stat(filepath.Join(strings.TrimPrefix(wh, "file://"), table+".g2")); err == nil && !sawOld {
			// Generation 2 is being built; queries still read generation 1.
			if g, _ := topology.CurrentGeneration(mustFS(t, wh), table); g == 1 {
				sawOld = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	if replayErr != nil {
		t.Fatalf("replay: %v\n%s", replayErr, out.String())
	}
	t.Logf("replay output:\n%s", out.String())
	if g, _ := topology.CurrentGeneration(mustFS(t, wh), table); g != 2 {
		t.Fatalf("generation %d after the replay", g)
	}
	if !sawOld {
		t.Log("the replay finished before the test could look at it mid-way")
	}
	total := next
	testkit.WaitQuery(t, wh, "SELECT count(*) FROM "+table, 60*time.Second, func(r [][]string) bool { return r[0][0] == fmt.Sprint(total) })
	settle(t, brokers, cfg, topic, total, time.Minute)
	// The first 6000 rows are the same rows as before, partition by partition.
	after, err := testkit.Query(t, wh, fmt.Sprintf("SELECT dt, count(*), sum(id) FROM %s WHERE id <= 6000 GROUP BY dt ORDER BY dt", table))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("replayed rows differ:\nbefore %v\nafter  %v", before, after)
	}
	// The old generation's files are gone; the new one lives in its own directory.
	if _, err := os.Stat(filepath.Join(strings.TrimPrefix(wh, "file://"), table)); !os.IsNotExist(err) {
		t.Fatalf("generation 1 still on disk: %v", err)
	}
}

// TestReplayWithoutPipeline: `minipipe replay` with no pipeline running says so within seconds, and how to
// start one, instead of reporting "0 rows to catch up" forever.
func TestReplayWithoutPipeline(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	topic := testkit.Topic(t, "noreplay")
	testkit.CreateTopic(t, brokers, topic, 1)
	// A table with rows, and then no pipeline: the user stopped `minipipe run`.
	app := testkit.StartApp(t, cfg)
	id := registerSchema(t, app.Registry, topic+"-value", eventSchema)
	var values [][]byte
	for i := 0; i < 100; i++ {
		values = append(values, frame(t, id, eventSchema, fmt.Sprintf(`{"id":%d,"payload":"p"}`, i)))
	}
	produceRaw(t, brokers, topic, values...)
	testkit.WaitQuery(t, cfg.WarehouseURL(), "SELECT count(*) FROM "+tableOf(topic), 60*time.Second, func(r [][]string) bool { return r[0][0] == "100" })
	app.Stop()
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- topology.RunReplay(ctx, cfg, tableOf(topic), &out, time.Second) }()
	for !strings.Contains(out.String(), "no running pipeline has taken the request") {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no hint after 30s:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after %s:\n%s", time.Since(start).Round(time.Second), out.String())
	if !strings.Contains(out.String(), "--pipeline-name "+cfg.PipelineName) {
		t.Fatalf("the hint does not say how to start the pipeline:\n%s", out.String())
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("replay returned %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
