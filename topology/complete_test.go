package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/testkit"
)

// TestStackCompleteness: hourly partitions, --allowed-lateness 1m, records with event times across three
// hours in four source partitions, one of which stops after the second hour. The first hour is complete at
// once; the second once that partition has been idle past the lateness; the third, still open, never:
// _SUCCESS in the two closed hours' directories on HDFS and minipipe.complete=true on their metastore
// partitions. A record of the first hour sent afterwards lands, and is counted late.
func TestStackCompleteness(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.PartitionBy = "hourly"
	cfg.TimestampField = "ts"
	cfg.AllowedLateness = time.Minute
	cfg.RotateInterval = 10 * time.Minute // files close because their hour completes (or a watermark follows a late row), not by age
	topic := testkit.Topic(t, "hours")
	testkit.CreateTopic(t, brokers, topic, 4)
	app := testkit.StartApp(t, cfg)
	const schema = `{"type":"record","name":"Event","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	id := registerSchema(t, app.Registry, topic+"-value", schema)
	h0 := time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC)
	next := 0
	event := func(at time.Time) []byte {
		next++
		return frame(t, id, schema, fmt.Sprintf(`{"id":%d,"ts":%d}`, next, at.UnixMilli()))
	}
	for q := int32(0); q < 4; q++ {
		var vs [][]byte
		for i := 0; i < 10; i++ {
			vs = append(vs, event(h0.Add(time.Duration(i)*5*time.Minute)))
		}
		for i := 0; i < 10; i++ {
			vs = append(vs, event(h0.Add(time.Hour+time.Duration(i)*5*time.Minute)))
		}
		if q < 3 { // partition 3 stops in the second hour
			for i := 0; i < 10; i++ {
				vs = append(vs, event(h0.Add(2*time.Hour+time.Duration(i)*3*time.Minute)))
			}
		}
		produceTo(t, brokers, topic, q, vs...)
	}
	table := tableOf(topic)
	wh, err := fs.Open(cfg.WarehouseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	success := func(hour int) bool {
		_, err := wh.Stat(fs.Join(table, fmt.Sprintf("dt=2026-11-02/hr=%02d", 7+hour), commit.SuccessFile))
		return err == nil
	}
	start := time.Now()
	waitFor := func(what string, timeout time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %v", what, timeout)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("_SUCCESS in the first hour", 60*time.Second, func() bool { return success(0) })
	t.Logf("first hour complete after %v", time.Since(start).Round(100*time.Millisecond))
	if success(1) {
		t.Fatal("the second hour was marked complete while partition 3, at its end, was not yet idle")
	}
	waitFor("_SUCCESS in the second hour", 2*time.Minute+cfg.AllowedLateness, func() bool { return success(1) })
	t.Logf("second hour complete after %v (partition 3 idle past the lateness)", time.Since(start).Round(100*time.Millisecond))

	// Every on-time row of the closed hours is in the table when they are marked.
	q := "hive." + cfg.HiveDatabase + "." + table
	waitFor("the closed hours' rows in Trino", 30*time.Second, func() bool {
		rows, err := testkit.TrinoQuery(trino, "SELECT hr, count(*) FROM "+q+" WHERE hr IN ('07', '08') GROUP BY hr ORDER BY hr")
		return err == nil && fmt.Sprint(rows) == "[[07 40] [08 40]]"
	})

	// The metastore says so too.
	hc, err := hive.New(hive.Config{URI: cfg.HiveMetastore, Database: cfg.HiveDatabase})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	waitFor("minipipe.complete on the closed hours' partitions", 30*time.Second, func() bool {
		d, err := hc.Describe(context.Background(), table)
		if err != nil {
			return false
		}
		return d.Partitions["dt=2026-11-02/hr=07"].Parameters[hive.CompleteParameter] == "true" &&
			d.Partitions["dt=2026-11-02/hr=08"].Parameters[hive.CompleteParameter] == "true"
	})
	d, err := hc.Describe(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	if d.Partitions["dt=2026-11-02/hr=09"].Parameters[hive.CompleteParameter] != "" || success(2) {
		t.Fatalf("the open hour is marked complete: %+v", d.Partitions["dt=2026-11-02/hr=09"])
	}

	// A late record of the first hour lands, and is counted.
	produceTo(t, brokers, topic, 0, event(h0.Add(30*time.Minute)))
	waitFor("the late row in the table", 30*time.Second, func() bool {
		rows, err := testkit.TrinoQuery(trino, "SELECT count(*) FROM "+q+" WHERE hr = '07'")
		return err == nil && fmt.Sprint(rows) == "[[41]]"
	})
	if late := testkit.Metric(app.HTTP, "minipipe_late_rows_total"); late != 1 {
		t.Errorf("minipipe_late_rows_total %v, want 1", late)
	}
	if after := testkit.Metric(app.HTTP, "minipipe_rows_after_complete_total"); after != 1 {
		t.Errorf("minipipe_rows_after_complete_total %v, want 1", after)
	}
	if success(2) {
		t.Error("the open hour is marked complete")
	}
	if restarts := testkit.Metric(app.HTTP, "minipipe_processor_restarts_total"); restarts != 0 {
		t.Errorf("%v processor restarts", restarts)
	}
}
