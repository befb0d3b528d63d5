package topology_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	icetable "github.com/apache/iceberg-go/table"

	"github.com/minipipe/minipipe/sinks/iceberg"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// Iceberg tables (--table-format iceberg) on the whole stack: minipipe's files added to Iceberg snapshots in
// the Hive Metastore, read by Trino's iceberg catalog and by pyiceberg.

func icebergConfig(t *testing.T, brokers []string) topology.Config {
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.TableFormat = "iceberg"
	return cfg
}

// TestStackSeedWalkthroughIceberg follows the seed README's two curl commands into an Iceberg table on an
// s3:// warehouse: Trino's iceberg catalog reads alice|NULL and bob|smith, the table's $snapshots carry
// minipipe's summary, time travel to the first snapshot shows alice alone, and pyiceberg reads the table
// from its metadata file.
func TestStackSeedWalkthroughIceberg(t *testing.T) {
	t.Parallel() // beside the other Iceberg tests, after the sequential ones: they mostly wait on Trino and the metastore
	if (os.Getenv("MINIPIPE_TEST_HMS") != "" || os.Getenv("MINIPIPE_TEST_TRINO") != "") && os.Getenv("MINIPIPE_TEST_S3") == "" {
		t.Skip("the metastore or Trino given in MINIPIPE_TEST_* reaches no S3 server of this test: set MINIPIPE_TEST_S3 to theirs (make test does)")
	}
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := icebergConfig(t, brokers)
	cfg.S3Endpoint = testkit.S3(t)
	cfg.Warehouse = "s3://" + testkit.S3Bucket + "/" + testkit.Topic(t, "ice")
	deleteTopic(t, brokers, "connect_test")
	cfg.Topics = "connect_test"
	app := testkit.StartApp(t, cfg)
	table := "iceberg." + cfg.HiveDatabase + ".connect_test"
	if status, body := curl(t, seedCurl1, app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 1: %d %s", status, body)
	}
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, cfg.RotateInterval+60*time.Second, func(r [][]string) bool { return fmt.Sprint(r) == "[[1]]" })
	if status, body := curl(t, seedCurl2, app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 2: %d %s", status, body)
	}
	rows := testkit.WaitTrino(t, trino, "SELECT name, lastname FROM "+table+" ORDER BY name", cfg.RotateInterval+60*time.Second,
		func(r [][]string) bool { return len(r) == 2 })
	if fmt.Sprint(rows) != "[[alice NULL] [bob smith]]" {
		t.Fatalf("Trino: %v", rows)
	}
	cols, err := testkit.TrinoQuery(trino, "SHOW COLUMNS FROM "+table)
	// lastname came with the second schema, after the table was made: Iceberg appends it.
	if err != nil || fmt.Sprint(cols) != "[[name varchar  ] [dt varchar  ] [lastname varchar  ]]" {
		t.Fatalf("SHOW COLUMNS: %v %v", cols, err)
	}
	snaps, err := testkit.TrinoQuery(trino, `SELECT CAST(snapshot_id AS varchar), operation, summary['minipipe.stream'], summary['minipipe.seq'], summary['minipipe.sources'], summary['added-records']
		FROM iceberg.`+cfg.HiveDatabase+`."connect_test$snapshots" ORDER BY committed_at`)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("$snapshots: %v %v", snaps, err)
	}
	for _, s := range snaps {
		if s[1] != "append" || !strings.HasPrefix(s[2], "_"+cfg.PipelineName+"_rows.") || s[3] == "" || !strings.Contains(s[4], "connect_test") || s[5] != "1" {
			t.Fatalf("snapshot %v lacks minipipe's summary (stream, seq, sources)", s)
		}
	}
	t.Logf("$snapshots: %v", snaps)
	// The first snapshot has the first schema's columns (no lastname yet).
	first, err := testkit.TrinoQuery(trino, "SELECT * FROM "+table+" FOR VERSION AS OF "+snaps[0][0])
	if err != nil || fmt.Sprint(first) != "[[alice "+time.Now().UTC().Format("2006-01-02")+"]]" {
		t.Fatalf("time travel to the first snapshot: %v %v", first, err)
	}
	// Every data file is one of minipipe's, under the table's location.
	wh := mustFS(t, cfg.WarehouseURL())
	paths, err := testkit.TrinoQuery(trino, `SELECT file_path FROM iceberg.`+cfg.HiveDatabase+`."connect_test$files"`)
	if err != nil || len(paths) != 2 {
		t.Fatalf("$files: %v %v", paths, err)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p[0], wh.URI("connect_test/dt=")) || !strings.HasSuffix(p[0], ".parquet") {
			t.Fatalf("data file %s is not under the table's location %s", p[0], wh.URI("connect_test"))
		}
	}

	// pyiceberg reads the table from its current metadata file.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cat, err := iceberg.New(iceberg.Config{Metastore: cfg.HiveMetastore, Database: cfg.HiveDatabase, FS: wh})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	tbl, err := cat.Load(ctx, "connect_test")
	if err != nil {
		t.Fatal(err)
	}
	// Every data file numbers its columns as the table does (Iceberg field ids).
	for _, p := range paths {
		b, err := wh.ReadFile(strings.TrimPrefix(p[0], strings.TrimSuffix(wh.URI("x"), "x")))
		if err != nil {
			t.Fatal(err)
		}
		r, err := pqfile.NewParquetReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := pqarrow.FromParquet(r.MetaData().Schema, nil, r.MetaData().KeyValueMetadata())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs.Fields() {
			id, _ := f.Metadata.GetValue(icetable.ArrowParquetFieldIDKey)
			if nf, ok := tbl.Schema().FindFieldByName(f.Name); !ok || id != strconv.Itoa(nf.ID) {
				t.Fatalf("data file %s: column %s has field id %q, the table's is %d", p[0], f.Name, id, nf.ID)
			}
		}
	}
	script := `
import json, os, sys
from pyiceberg.table import StaticTable
props = {"s3.endpoint": sys.argv[2], "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
         "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"], "s3.region": os.environ.get("AWS_REGION", "us-east-1")}
t = StaticTable.from_metadata(sys.argv[1], properties=props)
rows = t.scan(selected_fields=("name", "lastname", "dt")).to_arrow().sort_by("name").to_pylist()
print(json.dumps({"rows": rows, "snapshots": len(t.snapshots())}))
`
	out, err := exec.Command(testkit.PyIceberg(t), "-c", script, tbl.MetadataLocation(), cfg.S3Endpoint).CombinedOutput()
	if err != nil {
		t.Fatalf("pyiceberg: %v\n%s", err, out)
	}
	var got struct {
		Rows      []map[string]any `json:"rows"`
		Snapshots int              `json:"snapshots"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("pyiceberg printed %s", out)
	}
	today := time.Now().UTC().Format("2006-01-02")
	want := fmt.Sprintf("[map[dt:%s lastname:<nil> name:alice] map[dt:%s lastname:smith name:bob]]", today, today)
	if fmt.Sprint(got.Rows) != want || got.Snapshots != 2 {
		t.Fatalf("pyiceberg reads %v in %d snapshots; want %s in 2", got.Rows, got.Snapshots, want)
	}
	t.Logf("pyiceberg reads %v from %s", got.Rows, tbl.MetadataLocation())

	// Trino renames name; the stream still sends name, which lands in the renamed column (found by its id in
	// the files before, by the name mapping's old name for the files after), not in a new one.
	if _, err := testkit.TrinoQuery(trino, "ALTER TABLE "+table+" RENAME COLUMN name TO first_name"); err != nil {
		t.Fatal(err)
	}
	if status, body := curl(t, strings.NewReplacer("bob", "carol", "smith", "jones").Replace(seedCurl2), app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 3: %d %s", status, body)
	}
	rows = testkit.WaitTrino(t, trino, "SELECT first_name, lastname FROM "+table+" ORDER BY first_name", cfg.RotateInterval+60*time.Second,
		func(r [][]string) bool { return len(r) == 3 })
	cols, err = testkit.TrinoQuery(trino, "SHOW COLUMNS FROM "+table)
	if fmt.Sprint(rows) != "[[alice NULL] [bob smith] [carol jones]]" || err != nil || fmt.Sprint(cols) != "[[first_name varchar  ] [dt varchar  ] [lastname varchar  ]]" {
		t.Fatalf("after Trino renamed name to first_name: %v; columns %v %v", rows, cols, err)
	}
	t.Logf("after Trino renamed name to first_name, the stream's name lands in it: %v", rows)
}

// TestStackIcebergCrashAtEveryCommitStep is the crash suite on an Iceberg table on HDFS: minipipe is
// SIGKILLed at each step of the commit protocol in turn — after a snapshot went in but before the manifest
// recorded it (catalog.applied) among them — restarted, and at the end Trino's count and count distinct
// equal what was produced, and no two snapshots of a commit partition hold the same intent.
func TestStackIcebergCrashAtEveryCommitStep(t *testing.T) {
	t.Parallel() // beside the other Iceberg tests, after the sequential ones: they mostly wait on Trino and the metastore
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := crashTuned(icebergConfig(t, brokers))
	topic := testkit.Topic(t, "icrash")
	gen := primedTopic(t, brokers, cfg, topic)
	// The steps around the catalog (the Hive-table suite runs the others on the same protocol).
	steps := []string{"catalog.applied:1", "commit.intent:2", "catalog.applied:3", "recover.claimed:1", "commit.published:2", "commit.committed:2"}
	for _, step := range steps {
		start := time.Now()
		killAt(t, cfg, step, func() { gen.produce(60) })
		t.Logf("killed at %s after %v, %d records produced so far", step, time.Since(start).Round(100*time.Millisecond), gen.produced.Load())
	}
	testkit.StartProcess(t, cfg)
	table := tableOf(topic)
	settleTrino(t, brokers, cfg, trino, "iceberg."+cfg.HiveDatabase+"."+table, topic, int(gen.produced.Load()), 3*time.Minute)
	checkSnapshots(t, trino, cfg.HiveDatabase, table)
}

// checkSnapshots: the intents each snapshot added (minipipe.first-seq … minipipe.seq of its stream) never
// overlap another's, and the data files of the table are distinct.
func checkSnapshots(t *testing.T, trino, db, table string) {
	t.Helper()
	snaps, err := testkit.TrinoQuery(trino, `SELECT element_at(summary, 'minipipe.stream'), element_at(summary, 'minipipe.first-seq'), element_at(summary, 'minipipe.seq')
		FROM iceberg.`+db+`."`+table+`$snapshots" WHERE element_at(summary, 'minipipe.stream') IS NOT NULL`)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("$snapshots: %v %v", snaps, err)
	}
	type span struct{ first, last uint64 }
	by := map[string][]span{}
	for _, s := range snaps {
		f, _ := strconv.ParseUint(s[1], 10, 64)
		l, _ := strconv.ParseUint(s[2], 10, 64)
		by[s[0]] = append(by[s[0]], span{f, l})
	}
	for stream, spans := range by {
		sort.Slice(spans, func(i, j int) bool { return spans[i].first < spans[j].first })
		for i := 1; i < len(spans); i++ {
			if spans[i].first <= spans[i-1].last {
				t.Fatalf("stream %s: snapshots add intents %d-%d and %d-%d: one applied twice", stream, spans[i-1].first, spans[i-1].last, spans[i].first, spans[i].last)
			}
		}
	}
	files, err := testkit.TrinoQuery(trino, `SELECT count(*), count(DISTINCT file_path) FROM iceberg.`+db+`."`+table+`$files"`)
	if err != nil || len(files) != 1 || files[0][0] != files[0][1] {
		t.Fatalf("$files: %v %v", files, err)
	}
	t.Logf("%d snapshots from %d streams, none overlapping; %s data files, all distinct", len(snaps), len(by), files[0][0])
}

// TestStackIcebergManyInstances is issue 5's many-instance scenario on the whole stack, with an Iceberg table
// on HDFS (the Hive-table variant runs on a local and an S3 warehouse: TestManyInstances, TestS3ManyInstances): three
// instances, one frozen past two checkpoints of every commit partition, one SIGKILLed, a fourth joining, one
// SIGTERMed, with rows over 8 days so that several commit partitions (streams) race to commit snapshots of
// the one table. Trino then counts every row once, no two snapshots of a stream hold the same intent, and
// the table's data files are exactly the Parquet files the manifests committed.
func TestStackIcebergManyInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg, topic, produced := manyInstances(t, icebergConfig(t, brokers), brokers, withFlags)
	table := tableOf(topic)
	settleTrino(t, brokers, cfg, trino, "iceberg."+cfg.HiveDatabase+"."+table, topic, produced, 3*time.Minute)
	checkSnapshots(t, trino, cfg.HiveDatabase, table)
	wh := mustFS(t, cfg.WarehouseURL())
	filesMatchManifest(t, wh, table)
	files, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM iceberg.`+cfg.HiveDatabase+`."`+table+`$files"`)
	if err != nil {
		t.Fatal(err)
	}
	var parquet int
	var walk func(dir string)
	walk = func(dir string) {
		es, err := wh.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.IsDir && e.Name != "metadata" {
				walk(dir + "/" + e.Name)
			} else if strings.HasSuffix(e.Name, ".parquet") {
				parquet++
			}
		}
	}
	walk(table)
	if files[0][0] != strconv.Itoa(parquet) {
		t.Fatalf("the Iceberg table lists %s data files; the warehouse holds %d Parquet files", files[0][0], parquet)
	}
}

// TestStackIcebergCompact: `minipipe compact` turns an Iceberg table's many small files into few with the
// same rows while records keep arriving and Trino queries the table in a loop: every query sees each row once
// (count = count distinct, never fewer rows than the one before: the old files or the new ones, never a mix,
// never both), the appends committed meanwhile stay, and at the end the table holds every record once.
func TestStackIcebergCompact(t *testing.T) {
	t.Parallel() // beside the other Iceberg tests, after the sequential ones: they mostly wait on Trino and the metastore
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := crashTuned(icebergConfig(t, brokers))
	cfg.RotateInterval = time.Second
	topic := testkit.Topic(t, "icompact")
	gen := primedTopic(t, brokers, cfg, topic)
	testkit.StartProcess(t, cfg)
	for range 5 {
		gen.produce(300)
		time.Sleep(1500 * time.Millisecond)
	}
	table := tableOf(topic)
	qualified := "iceberg." + cfg.HiveDatabase + "." + table
	settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute)
	base := int(gen.produced.Load())
	filesOf := func() int {
		t.Helper()
		r, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM iceberg.`+cfg.HiveDatabase+`."`+table+`$files"`)
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
	// Records keep arriving, and queries run in a loop, meanwhile.
	stop := make(chan struct{})
	var bad []string
	queries, last := 0, base
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
				bad = append(bad, fmt.Sprint(r, err))
				continue
			}
			n, _ := strconv.Atoi(r[0][0])
			if n < last {
				bad = append(bad, fmt.Sprintf("%d rows after %d", n, last))
			}
			last = n
		}
	}()
	args := []string{"compact", "--table", table, "--table-format", "iceberg", "--catalog", "hive", "--hive-metastore", cfg.HiveMetastore,
		"--hive-database", cfg.HiveDatabase, "--warehouse", cfg.WarehouseURL()}
	out, err := exec.Command(testkit.Binary(t), args...).CombinedOutput()
	time.Sleep(3 * time.Second) // a few queries and appends after the swap too
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("minipipe compact: %v\n%s", err, out)
	}
	t.Logf("minipipe compact: %s", strings.TrimSpace(string(out)))
	if len(bad) > 0 {
		t.Fatalf("queries during the compaction saw %v", bad)
	}
	if !strings.Contains(string(out), "rewritten into") {
		t.Fatalf("nothing was compacted: %s", out)
	}
	t.Logf("%d files before; %d queries during the compaction, each row once, never fewer rows than before (%d → %d)", before, queries, base, last)
	settleTrino(t, brokers, cfg, trino, qualified, topic, int(gen.produced.Load()), 3*time.Minute)
	checkSnapshots(t, trino, cfg.HiveDatabase, table)
	after := filesOf()
	t.Logf("%d files after (the compacted ones and those appended since)", after)
	// The rows kept their partition (minipipe's files do not hold dt: the compaction fills it in).
	if r, err := testkit.TrinoQuery(trino, "SELECT count(*) FROM "+qualified+" WHERE dt IS NULL"); err != nil || fmt.Sprint(r) != "[[0]]" {
		t.Fatalf("rows without their dt after the compaction: %v %v", r, err)
	}
	// Expiry keeps the metadata small and the rows.
	args = append(args, "--expire-older-than", "1ms", "--retain-last", "3")
	if out, err := exec.Command(testkit.Binary(t), args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "expired") {
		t.Fatalf("minipipe compact --expire-older-than: %v\n%s", err, out)
	}
	want := fmt.Sprintf("[[%d %d]]", gen.produced.Load(), gen.produced.Load())
	if r, err := testkit.TrinoQuery(trino, "SELECT count(*), count(DISTINCT id) FROM "+qualified); err != nil || fmt.Sprint(r) != want {
		t.Fatalf("after the expiry: %v %v, want %s", r, err, want)
	}
}

// TestStackIcebergREST follows the seed README's two curl commands (into a topic of its own: the other Iceberg
// tests run beside it) into an Iceberg table of a REST catalog (Iceberg's own REST catalog server, from Maven
// Central) on HDFS and on S3: Trino's iceberg_rest catalog reads alice|NULL and bob|smith and the snapshots'
// summaries; a restart of minipipe adds nothing twice.
func TestStackIcebergREST(t *testing.T) {
	t.Parallel() // beside the other Iceberg tests, after the sequential ones
	if os.Getenv("MINIPIPE_TEST_TRINO") != "" && os.Getenv("MINIPIPE_TEST_ICEBERG_REST") == "" {
		t.Skip("the Trino given in MINIPIPE_TEST_TRINO reads no REST catalog of this test: set MINIPIPE_TEST_ICEBERG_REST to its (make test does)")
	}
	for _, backend := range []string{"hdfs", "s3"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			icebergREST(t, backend)
		})
	}
}

func icebergREST(t *testing.T, backend string) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := stackConfig(t, brokers, "")
	cfg.Catalog, cfg.HiveMetastore = "none", ""
	cfg.TableFormat, cfg.IcebergCatalog, cfg.IcebergRESTURI = "iceberg", "rest", testkit.IcebergREST(t)
	topic := testkit.Topic(t, "rest_"+backend)
	if backend == "s3" {
		cfg.S3Endpoint = testkit.S3(t)
		cfg.Warehouse = "s3://" + testkit.S3Bucket + "/" + topic
	}
	cfg.Topics = topic
	curlTo := func(command string) string {
		return strings.ReplaceAll(command, "/topics/connect_test", "/topics/"+topic)
	}
	app := testkit.StartApp(t, cfg)
	name := tableOf(topic)
	table := "iceberg_rest." + cfg.HiveDatabase + "." + name
	if status, body := curl(t, curlTo(seedCurl1), app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 1: %d %s", status, body)
	}
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, cfg.RotateInterval+60*time.Second, func(r [][]string) bool { return fmt.Sprint(r) == "[[1]]" })
	if status, body := curl(t, curlTo(seedCurl2), app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 2: %d %s", status, body)
	}
	rows := testkit.WaitTrino(t, trino, "SELECT name, lastname FROM "+table+" ORDER BY name", cfg.RotateInterval+60*time.Second,
		func(r [][]string) bool { return len(r) == 2 })
	if fmt.Sprint(rows) != "[[alice NULL] [bob smith]]" {
		t.Fatalf("Trino: %v", rows)
	}
	snaps, err := testkit.TrinoQuery(trino, `SELECT operation, summary['minipipe.stream'], summary['minipipe.sources'], summary['added-records']
		FROM iceberg_rest.`+cfg.HiveDatabase+`."`+name+`$snapshots" ORDER BY committed_at`)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("$snapshots: %v %v", snaps, err)
	}
	for _, s := range snaps {
		if s[0] != "append" || !strings.HasPrefix(s[1], "_"+cfg.PipelineName+"_rows.") || !strings.Contains(s[2], topic) || s[3] != "1" {
			t.Fatalf("snapshot %v lacks minipipe's summary", s)
		}
	}
	wh := mustFS(t, cfg.WarehouseURL())
	paths, err := testkit.TrinoQuery(trino, `SELECT file_path FROM iceberg_rest.`+cfg.HiveDatabase+`."`+name+`$files"`)
	if err != nil || len(paths) != 2 {
		t.Fatalf("$files: %v %v", paths, err)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p[0], wh.URI(name+"/dt=")) {
			t.Fatalf("data file %s is not under the table's location %s", p[0], wh.URI(name))
		}
	}
	t.Logf("%s: Trino reads %v from the REST catalog %s; $snapshots: %v", backend, rows, cfg.IcebergRESTURI, snaps)
	// A restart recovers every commit partition and reconciles the catalog: nothing is added twice.
	app.Stop()
	app = testkit.StartApp(t, cfg)
	if status, body := curl(t, curlTo(seedCurl1), app.Config.RestAddr); status != 200 {
		t.Fatalf("seed curl 1 again: %d %s", status, body)
	}
	rows = testkit.WaitTrino(t, trino, "SELECT name, count(*) FROM "+table+" GROUP BY name ORDER BY name", cfg.RotateInterval+60*time.Second,
		func(r [][]string) bool { return fmt.Sprint(r) == "[[alice 2] [bob 1]]" })
	if n, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM iceberg_rest.`+cfg.HiveDatabase+`."`+name+`$snapshots"`); err != nil || fmt.Sprint(n) != "[[3]]" {
		t.Fatalf("snapshots after the restart: %v %v", n, err)
	}
	t.Logf("%s: after a restart and the first curl again: %v in 3 snapshots", backend, rows)
}

// TestStackIcebergCompactComplete: --compact-complete on an hourly Iceberg table fed by four source
// partitions. Each hour holds a file per source partition. Once the first hour is marked complete its four
// files are rewritten into one (a replace snapshot) with the same rows, while the second hour, not complete,
// keeps its four; a late row of the first hour still lands, beside the compacted file.
func TestStackIcebergCompactComplete(t *testing.T) {
	t.Parallel()
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := icebergConfig(t, brokers)
	cfg.PartitionBy = "hourly"
	cfg.TimestampField = "ts"
	cfg.AllowedLateness = time.Minute
	cfg.CompactComplete = true
	cfg.RotateInterval = 10 * time.Minute // files close because their hour completes, not by age
	topic := testkit.Topic(t, "icehours")
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
		produceTo(t, brokers, topic, q, vs...)
	}
	table := "iceberg." + cfg.HiveDatabase + "." + tableOf(topic)
	perFile := `SELECT hr, count(*), count(DISTINCT id) FROM (SELECT hr, id, "$path" AS p FROM ` + table + `) GROUP BY hr, p ORDER BY hr, p`
	// The second hour's files are committed at the rotate interval, 10 minutes on: only the first hour's rows
	// are visible before, first in four files and then in one.
	rows := testkit.WaitTrino(t, trino, perFile, 3*time.Minute, func(r [][]string) bool { return fmt.Sprint(r) == "[[07 40 40]]" })
	t.Logf("the complete hour: %v (hour, rows, distinct ids per file)", rows)
	files, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM iceberg.`+cfg.HiveDatabase+`."`+tableOf(topic)+`$files"`)
	if err != nil || fmt.Sprint(files) != "[[1]]" {
		t.Fatalf("$files after the compaction: %v %v", files, err)
	}
	ops, err := testkit.TrinoQuery(trino, `SELECT operation FROM iceberg.`+cfg.HiveDatabase+`."`+tableOf(topic)+`$snapshots" ORDER BY committed_at`)
	if err != nil || len(ops) < 2 || ops[len(ops)-1][0] != "replace" {
		t.Fatalf("$snapshots: %v %v: want appends then a replace", ops, err)
	}

	// A late row of the complete hour lands beside the compacted file; the hour is not compacted again.
	produceTo(t, brokers, topic, 0, event(h0.Add(30*time.Minute)))
	rows = testkit.WaitTrino(t, trino, perFile, 2*time.Minute, func(r [][]string) bool { return len(r) == 2 })
	if fmt.Sprint(rows) != "[[07 1 1] [07 40 40]]" && fmt.Sprint(rows) != "[[07 40 40] [07 1 1]]" {
		t.Fatalf("after a late row: %v", rows)
	}
	total, err := testkit.TrinoQuery(trino, "SELECT count(*), count(DISTINCT id) FROM "+table+" WHERE hr = '07'")
	if err != nil || fmt.Sprint(total) != "[[41 41]]" {
		t.Fatalf("count, count distinct of the complete hour: %v %v", total, err)
	}
	if restarts := testkit.Metric(app.HTTP, "minipipe_processor_restarts_total"); restarts != 0 {
		t.Errorf("%v processor restarts", restarts)
	}
}
