package topology_test

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// The seed's whole stack: real Kafka, HDFS (NameNode + DataNode), Hive Metastore and Trino, each started
// by the project's scripts from Maven Central jars; minipipe writes to HDFS and registers in the metastore,
// and every check reads through Trino.

// stackConfig points a test configuration at HDFS and the metastore, with its own warehouse directory and
// its own Hive database.
func stackConfig(t *testing.T, brokers []string, metastore string) topology.Config {
	cfg := testkit.TestConfig(t, brokers)
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	cfg.Warehouse = testkit.HDFS(t) + "/" + strings.NewReplacer(",", "_", ":", "_", "/", "_").Replace(t.Name()) + "-" + suffix
	cfg.Catalog = "hive"
	cfg.HiveMetastore = metastore
	cfg.HiveDatabase = "db_" + suffix
	return cfg
}

// settleTrino waits until Trino reads every record of the topic once from the table, then checks again
// after a rotate interval (a duplicate gets every chance to appear) and that no staging file is left.
func settleTrino(t *testing.T, brokers []string, cfg topology.Config, trino, table, topic string, distinct int, timeout time.Duration) {
	t.Helper()
	want := int(testkit.EndOffsets(t, brokers, topic))
	var n, d int
	var err error
	waitRows(t, timeout, want, func() int {
		n, _, err = testkit.TrinoCountDistinct(trino, table, "id")
		if err != nil {
			return -1
		}
		return n
	})
	time.Sleep(cfg.RotateInterval + time.Second)
	n, d, err = testkit.TrinoCountDistinct(trino, table, "id")
	if err != nil {
		t.Fatalf("counting through Trino: %v", err)
	}
	t.Logf("topic holds %d records (%d distinct ids); Trino: count %d, count distinct %d", want, distinct, n, d)
	if n < want && d == n {
		explainShortfall(t, brokers, topic, table, want, func(sql string) ([][]string, error) { return testkit.TrinoQuery(trino, sql) },
			cfg.WarehouseURL(), tableOf(topic))
	}
	if n != want || d != distinct {
		t.Fatalf("exactly once violated: Trino reads %d rows, %d distinct ids; the topic holds %d records with %d distinct ids", n, d, want, distinct)
	}
	if left := testkit.StagingFiles(t, cfg.WarehouseURL()); len(left) > 0 {
		t.Fatalf("staging files left: %v", left)
	}
}

// TestStackSeedWalkthrough follows the seed README's "Example Use Case" on the full stack: its two curl
// commands, then the query in Trino through the Hive Metastore, as the seed ran it in Presto.
func TestStackSeedWalkthrough(t *testing.T) {
	brokers := testkit.Kafka(t)
	stackSeedWalkthrough(t, brokers, stackConfig(t, brokers, testkit.SharedMetastore(t)))
}

// TestStackSeedWalkthroughS3: the same on an s3:// warehouse (moto's server): the metastore makes the s3a://
// locations through Hadoop's S3A, Trino reads the files with its native S3 file system, `minipipe query` from
// its mirror.
func TestStackSeedWalkthroughS3(t *testing.T) {
	if (os.Getenv("MINIPIPE_TEST_HMS") != "" || os.Getenv("MINIPIPE_TEST_TRINO") != "") && os.Getenv("MINIPIPE_TEST_S3") == "" {
		t.Skip("the metastore or Trino given in MINIPIPE_TEST_* reaches no S3 server of this test: set MINIPIPE_TEST_S3 to theirs (make test does)")
	}
	brokers := testkit.Kafka(t)
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.S3Endpoint = testkit.S3(t)
	cfg.Warehouse = "s3://" + testkit.S3Bucket + "/" + testkit.Topic(t, "seed")
	stackSeedWalkthrough(t, brokers, cfg)
}

// stackSeedWalkthrough runs the seed's two curl commands on cfg's warehouse and metastore, then reads the table
// through Trino (the rows, columns, partitions and file paths), the console's SQL page on Trino, the
// warehouse's own listing and `minipipe query`.
func stackSeedWalkthrough(t *testing.T, brokers []string, cfg topology.Config) {
	trino := testkit.Trino(t)
	deleteTopic(t, brokers, "connect_test")
	cfg.Topics = "connect_test"
	cfg.Trino = trino // the console's SQL page runs on it
	app := testkit.StartApp(t, cfg)
	for i, cmd := range []string{seedCurl1, seedCurl2} {
		if status, body := curl(t, cmd, app.Config.RestAddr); status != 200 {
			t.Fatalf("seed curl %d: %d %s", i+1, status, body)
		}
	}
	table := "hive." + cfg.HiveDatabase + ".connect_test"
	start := time.Now()
	rows := testkit.WaitTrino(t, trino, "SELECT name, lastname FROM "+table+" ORDER BY name", cfg.RotateInterval+60*time.Second,
		func(r [][]string) bool { return len(r) == 2 })
	if fmt.Sprint(rows) != "[[alice NULL] [bob smith]]" {
		t.Fatalf("Trino: %v", rows)
	}
	t.Logf("Trino reads both rows %v after the second request", time.Since(start).Round(100*time.Millisecond))
	// Trino's iceberg catalog (deploy/trino) is on the same metastore: it sees the database.
	if schemas, err := testkit.TrinoQuery(trino, "SHOW SCHEMAS FROM iceberg LIKE '"+cfg.HiveDatabase+"'"); err != nil || fmt.Sprint(schemas) != "[["+cfg.HiveDatabase+"]]" {
		t.Fatalf("SHOW SCHEMAS FROM iceberg: %v %v", schemas, err)
	}
	// The console's SQL page, on Trino (the warehouse is remote: DuckDB is not offered), the seed's query as
	// a user types it; a write is refused before it reaches Trino.
	ct := []string{"Content-Type", "application/json"}
	if r := testkit.Do(t, "GET", app.HTTP+"/console/api/info", ""); !strings.Contains(string(r.Body), `"engines":["trino"]`) {
		t.Fatalf("console engines: %d %s", r.Status, r.Body)
	}
	r := testkit.Do(t, "POST", app.HTTP+"/console/api/sql", `{"sql":"SELECT name, lastname FROM connect_test ORDER BY name","engine":"trino"}`, ct...)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"rows":[["alice",null],["bob","smith"]]`) {
		t.Fatalf("console SQL on Trino: %d %s", r.Status, r.Body)
	}
	r = testkit.Do(t, "POST", app.HTTP+"/console/api/sql", `{"sql":"INSERT INTO connect_test (name) VALUES ('mallory')","engine":"trino"}`, ct...)
	if r.Status != 422 || r.ErrorCode() != 42205 {
		t.Fatalf("console INSERT on Trino: %d %s", r.Status, r.Body)
	}
	if r := testkit.Do(t, "GET", app.HTTP+"/console/api/tables/connect_test", ""); r.Status != 200 || !strings.Contains(string(r.Body), `"smith"`) {
		t.Fatalf("the table page's newest rows, through Trino: %d %.600s", r.Status, r.Body)
	}
	cols, err := testkit.TrinoQuery(trino, "SHOW COLUMNS FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cols) != "[[name varchar  ] [lastname varchar  ] [dt varchar partition key ]]" {
		t.Fatalf("SHOW COLUMNS: %v", cols)
	}
	today := time.Now().UTC().Format("2006-01-02")
	parts, err := testkit.TrinoQuery(trino, `SELECT dt FROM hive.`+cfg.HiveDatabase+`."connect_test$partitions"`)
	if err != nil || fmt.Sprint(parts) != "[["+today+"]]" {
		t.Fatalf("partitions: %v %v (today %s)", parts, err, today)
	}
	paths, err := testkit.TrinoQuery(trino, `SELECT DISTINCT "$path" FROM `+table)
	if err != nil || len(paths) == 0 {
		t.Fatal(err)
	}
	wh := mustFS(t, cfg.WarehouseURL())
	for _, p := range paths {
		if !strings.HasPrefix(p[0], wh.URI("connect_test/dt="+today)+"/") || !strings.HasSuffix(p[0], ".parquet") {
			t.Fatalf("file %s is not under the table's location %s", p[0], wh.URI("connect_test"))
		}
	}
	t.Logf("Trino read %d file(s) under %s", len(paths), wh.URI("connect_test"))
	entries, err := wh.ReadDir("connect_test/dt=" + today)
	if err != nil || len(entries) != len(paths) {
		t.Fatalf("the warehouse holds %v (%v); Trino read %v", entries, err, paths)
	}
	// `minipipe query`: DuckDB over the table's files, mirrored.
	args := []string{"query", "--warehouse", cfg.WarehouseURL(), "--data-dir", t.TempDir(), "--format", "csv"}
	if cfg.S3Endpoint != "" {
		args = append(args, "--s3-endpoint", cfg.S3Endpoint)
	}
	out, err := exec.Command(testkit.Binary(t), append(args, "SELECT name, lastname FROM connect_test ORDER BY name")...).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "name,lastname\nalice,\nbob,smith\n") {
		t.Fatalf("minipipe query on %s: %v\n%s", cfg.WarehouseURL(), err, out)
	}
}

// TestStackSchemaEvolution: rows of two schema versions spread over many dt partitions, the second adding
// a column; Trino reads every row, the old ones with NULL in the new column, and the table's partitions
// all show the column.
func TestStackSchemaEvolution(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.TimestampField = "ts"
	topic := testkit.Topic(t, "evolve")
	testkit.CreateTopic(t, brokers, topic, 2)
	app := testkit.StartApp(t, cfg)
	const v1 = `{"type":"record","name":"Visit","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	const v2 = `{"type":"record","name":"Visit","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"page","type":["null","string"],"default":null}]}`
	id1 := registerSchema(t, app.Registry, topic+"-value", v1)
	id2 := registerSchema(t, app.Registry, topic+"-value", v2)
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var values [][]byte
	// Days 1-6 with schema 1, days 4-9 with schema 2: three partitions hold both.
	for i := 0; i < 60; i++ {
		ts := base.Add(time.Duration(i/10) * 24 * time.Hour).UnixMilli()
		values = append(values, frame(t, id1, v1, fmt.Sprintf(`{"id":%d,"ts":%d}`, i, ts)))
	}
	for i := 60; i < 120; i++ {
		ts := base.Add(time.Duration(3+(i-60)/10) * 24 * time.Hour).UnixMilli()
		values = append(values, frame(t, id2, v2, fmt.Sprintf(`{"id":%d,"ts":%d,"page":{"string":"/p%d"}}`, i, ts, i)))
	}
	produceRaw(t, brokers, topic, values...)
	table := "hive." + cfg.HiveDatabase + "." + tableOf(topic)
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, cfg.RotateInterval+60*time.Second, func(r [][]string) bool { return len(r) == 1 && r[0][0] == "120" })
	rows, err := testkit.TrinoQuery(trino, "SELECT dt, count(*), count(page), min(id), max(id) FROM "+table+" GROUP BY dt ORDER BY dt")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r, " "))
	}
	want := []string{
		"2026-11-01 10 0 0 9", "2026-11-02 10 0 10 19", "2026-11-03 10 0 20 29",
		"2026-11-04 20 10 30 69", "2026-11-05 20 10 40 79", "2026-11-06 20 10 50 89",
		"2026-11-07 10 10 90 99", "2026-11-08 10 10 100 109", "2026-11-09 10 10 110 119",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("per partition (dt, rows, rows with page, ids):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every row reads right: old ones have no page, new ones theirs; ts is a TIMESTAMP in its dt.
	bad, err := testkit.TrinoQuery(trino, "SELECT id FROM "+table+` WHERE (id < 60 AND page IS NOT NULL) OR (id >= 60 AND page <> '/p' || CAST(id AS varchar))
		OR CAST(CAST(ts AS date) AS varchar) <> dt`)
	if err != nil || len(bad) != 0 {
		t.Fatalf("rows that read wrong: %v %v", bad, err)
	}
	parts, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM hive.`+cfg.HiveDatabase+`."`+tableOf(topic)+`$partitions"`)
	if err != nil || parts[0][0] != "9" {
		t.Fatalf("partitions: %v %v", parts, err)
	}
}

// TestStackTypes: timestamps, dates and decimals written by minipipe read in Trino as TIMESTAMP, DATE and
// DECIMAL with the right values.
func TestStackTypes(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.PartitionBy = "none"
	topic := testkit.Topic(t, "types")
	testkit.CreateTopic(t, brokers, topic, 1)
	app := testkit.StartApp(t, cfg)
	const schema = `{"type":"record","name":"Payment","fields":[
		{"name":"id","type":"long"},
		{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"at_us","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"day","type":{"type":"int","logicalType":"date"}},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
		{"name":"rate","type":{"type":"fixed","name":"Rate","size":8,"logicalType":"decimal","precision":18,"scale":6}},
		{"name":"maybe","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null}]}`
	id := registerSchema(t, app.Registry, topic+"-value", schema)
	// Trino's Hive tables read timestamps in milliseconds (hive.timestamp-precision).
	// 2026-11-25T13:45:30.123Z = 1795614330123 ms; day 20417 = 2025-11-25; amount 1234567.89 = 123456789
	// unscaled (bytes \u0007[\u00cd\u0015); rate -0.000042 = -42 unscaled in 8 bytes.
	produceRaw(t, brokers, topic,
		frame(t, id, schema, `{"id":1,"at":1795614330123,"at_us":1795614330123456,"day":20417,"amount":"\u0007[\u00cd\u0015","rate":"\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00d6","maybe":null}`),
		frame(t, id, schema, `{"id":2,"at":0,"at_us":-1000,"day":-1,"amount":"\u0000","rate":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0001","maybe":{"long":86400000}}`))
	table := "hive." + cfg.HiveDatabase + "." + tableOf(topic)
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, cfg.RotateInterval+60*time.Second, func(r [][]string) bool { return len(r) == 1 && r[0][0] == "2" })
	types, err := testkit.TrinoQuery(trino, "SELECT typeof(at), typeof(at_us), typeof(day), typeof(amount), typeof(rate), typeof(maybe) FROM "+table+" LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(types) != "[[timestamp(3) timestamp(3) date decimal(12,2) decimal(18,6) timestamp(3)]]" {
		t.Fatalf("types: %v", types)
	}
	rows, err := testkit.TrinoQuery(trino, "SELECT id, CAST(at AS varchar), CAST(at_us AS varchar), CAST(day AS varchar), CAST(amount AS varchar), CAST(rate AS varchar), CAST(maybe AS varchar) FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r, " | "))
	}
	sort.Strings(got)
	want := []string{
		"1 | 2026-11-25 13:45:30.123 | 2026-11-25 13:45:30.123 | 2025-11-25 | 1234567.89 | -0.000042 | NULL",
		"2 | 1970-01-01 00:00:00.000 | 1969-12-31 23:59:59.999 | 1969-12-31 | 0.00 | 0.000001 | 1970-01-02 00:00:00.000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("values:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStackCrashAtEveryCommitStep is the crash suite on HDFS with the metastore: minipipe is killed with
// SIGKILL at each step of the commit protocol in turn (the catalog step and the recovery steps included),
// restarted, and at the end Trino's count and count distinct equal what was produced.
func TestStackCrashAtEveryCommitStep(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := crashTuned(stackConfig(t, brokers, testkit.SharedMetastore(t)))
	topic := testkit.Topic(t, "hcrash")
	gen := primedTopic(t, brokers, cfg, topic)
	steps := []string{"catalog.applied:1", "commit.staged:2", "commit.intent:2", "recover.claimed:1", "commit.published:2",
		"recover.settled:1", "commit.committed:2", "commit.acked:2"}
	for _, step := range steps {
		start := time.Now()
		// Records keep arriving until the failpoint fires.
		killAt(t, cfg, step, func() { gen.produce(60) })
		t.Logf("killed at %s after %v, %d records produced so far", step, time.Since(start).Round(100*time.Millisecond), gen.produced.Load())
	}
	testkit.StartProcess(t, cfg)
	settleTrino(t, brokers, cfg, trino, "hive."+cfg.HiveDatabase+"."+tableOf(topic), topic, int(gen.produced.Load()), 3*time.Minute)
}

// TestStackMetastoreOutage stops the metastore while data flows — new partitions, a new column — and
// starts it again: files keep being committed meanwhile, and the table then catches up with every
// TestStackCrashUnderLoad is the random-kill crash test on HDFS with the Hive catalog: minipipe is SIGKILLed
// at random moments while records keep arriving, then Trino counts every row once.
func TestStackCrashUnderLoad(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	cfg := crashTuned(stackConfig(t, brokers, testkit.SharedMetastore(t)))
	cfg.FlushSize = 2000
	topic := testkit.Topic(t, "hload")
	produced := crashUnderLoad(t, brokers, cfg, topic, 4)
	settleTrino(t, brokers, cfg, trino, "hive."+cfg.HiveDatabase+"."+tableOf(topic), topic, produced, 3*time.Minute)
}

// partition and column, Trino returning every row once.
func TestStackMetastoreOutage(t *testing.T) {
	brokers := testkit.Kafka(t)
	hms := testkit.StartMetastore(t)
	trino := testkit.StartTrino(t, hms.URI())
	catalog := "hive"
	cfg := stackConfig(t, brokers, hms.URI())
	cfg.TimestampField = "ts"
	cfg.RotateInterval = 2 * time.Second
	topic := testkit.Topic(t, "hmsdown")
	testkit.CreateTopic(t, brokers, topic, 2)
	app := testkit.StartApp(t, cfg)
	const v1 = `{"type":"record","name":"Visit","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	const v2 = `{"type":"record","name":"Visit","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"page","type":["null","string"],"default":null}]}`
	id1 := registerSchema(t, app.Registry, topic+"-value", v1)
	base := time.Date(2026, 10, 1, 0, 30, 0, 0, time.UTC)
	rows := func(from, to, schemaID int, schema string, day0 int) [][]byte {
		var out [][]byte
		for i := from; i < to; i++ {
			ts := base.Add(time.Duration(day0+(i-from)%3) * 24 * time.Hour).UnixMilli()
			datum := fmt.Sprintf(`{"id":%d,"ts":%d}`, i, ts)
			if schemaID != id1 {
				datum = fmt.Sprintf(`{"id":%d,"ts":%d,"page":{"string":"/p"}}`, i, ts)
			}
			out = append(out, frame(t, schemaID, schema, datum))
		}
		return out
	}
	table := catalog + "." + cfg.HiveDatabase + "." + tableOf(topic)
	produceRaw(t, brokers, topic, rows(0, 200, id1, v1, 0)...) // days 1-3
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, 90*time.Second, func(r [][]string) bool { return len(r) == 1 && r[0][0] == "200" })

	if err := hms.Stop(); err != nil {
		t.Fatal(err)
	}
	id2 := registerSchema(t, app.Registry, topic+"-value", v2)
	produceRaw(t, brokers, topic, rows(200, 500, id2, v2, 2)...) // days 3-5, with the new column
	// The files are committed with the metastore down.
	wh := mustFS(t, cfg.WarehouseURL())
	deadline := time.Now().Add(90 * time.Second)
	for {
		tables, err := topology.ListTables(wh)
		var n int64
		if err == nil && len(tables) == 1 {
			n = tables[0].Rows
		}
		if n == 500 {
			t.Logf("500 rows committed in %d partitions with the metastore down", len(tables[0].Partitions))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the metastore down, %d rows of 500 were committed (%v)", n, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	m := testkit.Do(t, "GET", app.HTTP+"/metrics", "")
	if !strings.Contains(string(m.Body), "minipipe_catalog_errors_total") || strings.Contains(string(m.Body), "minipipe_catalog_errors_total 0\n") {
		t.Fatalf("no metastore errors counted while it was down")
	}
	time.Sleep(3 * time.Second)
	if err := hms.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testkit.WaitTrino(t, trino, "SELECT count(*), count(DISTINCT id), count(page) FROM "+table, 2*time.Minute,
		func(r [][]string) bool { return len(r) == 1 && strings.Join(r[0], " ") == "500 500 300" })
	t.Logf("the metastore caught up %v after it came back", time.Since(start).Round(100*time.Millisecond))
	parts, err := testkit.TrinoQuery(trino, `SELECT count(*) FROM `+catalog+`.`+cfg.HiveDatabase+`."`+tableOf(topic)+`$partitions"`)
	if err != nil || parts[0][0] != "5" {
		t.Fatalf("partitions after catching up: %v %v", parts, err)
	}
}

// TestStackNameNodeOutage stops the NameNode while records arrive: the pipeline backs off, resumes when it
// returns, and Trino reads every record once.
func TestStackNameNodeOutage(t *testing.T) {
	brokers := testkit.Kafka(t)
	trino := testkit.Trino(t)
	h := testkit.StartHDFS(t)
	cfg := stackConfig(t, brokers, testkit.SharedMetastore(t))
	cfg.Warehouse = h.URL("/nnoutage")
	cfg.FlushSize = 500
	cfg.RotateInterval = 2 * time.Second
	topic := testkit.Topic(t, "nndown")
	testkit.CreateTopic(t, brokers, topic, 2)
	p := testkit.StartProcess(t, cfg)
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)
	gen := newLoadGen(t, brokers, topic, id)
	gen.produce(1000)
	table := "hive." + cfg.HiveDatabase + "." + tableOf(topic)
	testkit.WaitTrino(t, trino, "SELECT count(*) FROM "+table, 90*time.Second, func(r [][]string) bool { return len(r) == 1 && r[0][0] == "1000" })
	if err := h.StopNameNode(); err != nil {
		t.Fatal(err)
	}
	gen.produce(2000)
	time.Sleep(8 * time.Second)
	if err := h.StartNameNode(); err != nil {
		t.Fatal(err)
	}
	gen.produce(1000)
	settleTrino(t, brokers, cfg, trino, table, topic, int(gen.produced.Load()), 3*time.Minute)
	if !strings.Contains(p.Log(), "level=") {
		t.Log(p.Log())
	}
}
