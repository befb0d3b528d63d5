package hive_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/sinks/parquet"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func cols(t *testing.T, schema string) *arrow.Schema {
	t.Helper()
	s, err := avro.Parse(schema)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parquet.ArrowSchema(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestHiveTypes(t *testing.T) {
	got := hive.HiveColumns(cols(t, `{"type":"record","name":"R","fields":[
		{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},
		{"name":"d","type":"double"},{"name":"s","type":["null","string"]},{"name":"by","type":"bytes"},
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"tu","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"dt","type":{"type":"int","logicalType":"date"}},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
		{"name":"tags","type":{"type":"array","items":"string"}},{"name":"attrs","type":{"type":"map","values":"long"}},
		{"name":"Nested","type":{"type":"record","name":"N","fields":[{"name":"X","type":"int"}]}},
		{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}]}`))
	want := "b:boolean i:int l:bigint f:float d:double s:string by:binary ts:timestamp tu:timestamp dt:date amount:decimal(10,2) " +
		"tags:array<string> attrs:map<string,bigint> nested:struct<x:int> e:string"
	var parts []string
	for _, c := range got {
		parts = append(parts, c.Name+":"+c.Type)
	}
	if strings.Join(parts, " ") != want {
		t.Fatalf("hive types\n got %s\nwant %s", strings.Join(parts, " "), want)
	}
}

func apply(t *testing.T, c *hive.Catalog, changes []manifest.CatalogChange) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
}

// TestCatalogLifecycle runs the changes a table goes through against a real Hive Metastore: created
// EXTERNAL with its partition key, partitions added, a column added by a newer schema with CASCADE (old
// partitions show it), everything applied twice without harm, and a replay's swap.
func TestCatalogLifecycle(t *testing.T) {
	uri := testkit.SharedMetastore(t)
	db := fmt.Sprintf("lifecycle_%d", time.Now().UnixNano()%1_000_000)
	c, err := hive.New(hive.Config{URI: uri, Database: db, DatabaseLocation: testkit.HDFS(t) + "/hivetest"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loc := testkit.HDFS(t) + "/hivetest/events"
	v1 := cols(t, `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`)
	v2 := cols(t, `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"note","type":["null","string"],"default":null}]}`)
	day := func(d string) [][2]string { return [][2]string{{"dt", d}} }

	first := c.Changes("events", 1, loc, day("2026-11-24"), v1, 1, true, true)
	if len(first) != 2 || first[0].Op != hive.OpTable || first[1].Op != hive.OpPartition {
		t.Fatalf("changes of a first file: %+v", first)
	}
	if again := c.Changes("events", 1, loc, day("2026-11-24"), v1, 1, false, false); len(again) != 0 {
		t.Fatalf("a known partition and schema need nothing: %+v", again)
	}
	apply(t, c, first)
	apply(t, c, first) // idempotent
	d, err := c.Describe(context.Background(), "events")
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "EXTERNAL_TABLE" || d.Parameters["EXTERNAL"] != "TRUE" || d.Location != loc || fmt.Sprint(d.PartitionKeys) != "[dt]" ||
		fmt.Sprint(d.Columns) != "[{id bigint} {name string}]" || len(d.Partitions) != 1 {
		t.Fatalf("after the first file: %+v", d)
	}
	if p := d.Partitions["dt=2026-11-24"]; p.Location != loc+"/dt=2026-11-24" {
		t.Fatalf("partition: %+v", d.Partitions)
	}

	// A newer schema in a new partition: the column is added, with CASCADE, so the old partition has it.
	apply(t, c, c.Changes("events", 1, loc, day("2026-11-25"), v2, 2, true, true))
	// An older schema's late file must not narrow anything.
	apply(t, c, c.Changes("events", 1, loc, day("2026-11-23"), v1, 1, true, true))
	d, err = c.Describe(context.Background(), "events")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Columns) != "[{id bigint} {name string} {note string}]" || len(d.Partitions) != 3 || d.Parameters["minipipe.schema_id"] != "2" {
		t.Fatalf("after schema 2: %+v", d)
	}
	if p := d.Partitions["dt=2026-11-24"]; len(p.Columns) != 3 {
		t.Fatalf("the old partition lacks the new column (no CASCADE?): %+v", p)
	}

	// A replay swapped generation 2 in, which has two of the partitions: the table moves, the partitions
	// move, the third is dropped.
	loc2 := loc + ".g2"
	err = c.Reconcile(context.Background(), hive.TablePartitions{Table: "events", Generation: 2, Location: loc2, PartitionKeys: []string{"dt"},
		Partitions: [][]string{{"2026-11-24"}, {"2026-11-25"}}, Locations: []string{loc2 + "/dt=2026-11-24", loc2 + "/dt=2026-11-25"}, Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.Describe(context.Background(), "events")
	if err != nil {
		t.Fatal(err)
	}
	if d.Location != loc2 || len(d.Partitions) != 2 || d.Partitions["dt=2026-11-25"].Location != loc2+"/dt=2026-11-25" || len(d.Columns) != 3 {
		t.Fatalf("after the swap: %+v", d)
	}
	// Changes for the old generation are ignored once a generation function says 2 is current.
	c2, _ := hive.New(hive.Config{URI: uri, Database: db, Generation: func(string) (int, error) { return 2, nil }})
	defer c2.Close()
	apply(t, c2, c.Changes("events", 1, loc, day("2026-11-20"), v1, 1, true, true))
	if d, _ = c2.Describe(context.Background(), "events"); len(d.Partitions) != 2 {
		t.Fatalf("a change of the old generation was applied: %+v", d.Partitions)
	}
}

func TestUnreachableMetastore(t *testing.T) {
	c, err := hive.New(hive.Config{URI: fmt.Sprintf("thrift://127.0.0.1:%d", testkit.FreePort(t)), Database: "x", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Apply(context.Background(), c.Changes("t", 1, "file:///tmp/t", nil, cols(t, `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`), 1, true, true))
	if err == nil || !hive.IsRetriable(err) {
		t.Fatalf("want a retriable error, got %v", err)
	}
	if _, err := hive.New(hive.Config{URI: "http://x", Database: "x"}); err == nil {
		t.Error("a non-thrift URI must be refused")
	}
	if _, err := hive.New(hive.Config{URI: "thrift://x:1", Database: "../etc"}); err == nil {
		t.Error("an invalid database name must be refused")
	}
}
