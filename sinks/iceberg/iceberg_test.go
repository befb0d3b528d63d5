package iceberg_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	icebergsdk "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hive_metastore"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/iceberg"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// testWarehouse gives a test the shared metastore, a local warehouse in a temp dir and a database of its own.
func testWarehouse(t *testing.T, prefix string) (uri, root string, wh fs.FS, db string) {
	return testWarehouseOn(t, prefix, "hive")
}

// testWarehouseOn is testWarehouse with the tables in the shared metastore (kind hive) or the shared Iceberg
// REST catalog (kind rest): uri is then the catalog's http:// URI.
func testWarehouseOn(t *testing.T, prefix, kind string) (uri, root string, wh fs.FS, db string) {
	t.Helper()
	if kind == "rest" {
		uri = testkit.IcebergREST(t)
	} else {
		uri = testkit.SharedMetastore(t)
	}
	root = t.TempDir()
	local, err := fs.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	return uri, root, local, fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1_000_000)
}

// openCatalog opens a catalog on the test's warehouse, closed when the test ends: uri is the metastore's, or
// a REST catalog's (http://…).
func openCatalog(t *testing.T, uri, db string, wh fs.FS, locks bool) *iceberg.Catalog {
	t.Helper()
	cfg := iceberg.Config{Metastore: uri, Database: db, FS: wh, HiveLocks: locks}
	if strings.HasPrefix(uri, "http") {
		cfg = iceberg.Config{REST: uri, Database: db, FS: wh}
	}
	c, err := iceberg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var v1 = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "name", Type: arrow.BinaryTypes.String}}, nil)
var v2 = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)

// writeFile writes rows ids [from, from+n) as a Parquet file of schema s at name in the warehouse.
func writeFile(t *testing.T, root, name string, s *arrow.Schema, from, n int) manifest.File {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i := from; i < from+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append("n" + strconv.Itoa(i))
		if s.NumFields() > 2 {
			b.Field(2).(*array.StringBuilder).Append("note")
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(s, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.File{Final: name, Rows: int64(n), Bytes: st.Size(),
		Sources: []manifest.SourceRange{{Source: "events:abc:0", First: int64(from), Last: int64(from + n - 1), Count: int64(n)}}}
}

// TestSnapshotsExactlyOnce runs a table's changes against the real metastore: the table is created with
// its partition spec, a batch of files lands in one snapshot carrying minipipe's summary, the same batch
// applied again (a retry, a zombie) adds nothing, two catalogs racing to apply one batch add it once, a
// newer schema adds its column, and the table's files are exactly the committed ones.
//
// It runs on both catalogs: the metastore and a REST catalog (Iceberg's own server).
func TestSnapshotsExactlyOnce(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) { snapshotsExactlyOnce(t, kind) })
	}
}

func snapshotsExactlyOnce(t *testing.T, kind string) {
	uri, root, wh, db := testWarehouseOn(t, "ice", kind)
	open := func() *iceberg.Catalog { return openCatalog(t, uri, db, wh, false) }
	c := open()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	loc := wh.URI("events")
	var seq uint64
	// changes gives the changes of committing n files of 100 rows each, in day d, with schema s.
	changes := func(s *arrow.Schema, d string, n int, first bool) []manifest.CatalogChange {
		var out []manifest.CatalogChange
		for i := 0; i < n; i++ {
			seq++
			f := writeFile(t, root, fmt.Sprintf("events/dt=%s/f%d.parquet", d, seq), s, int(seq)*100, 100)
			f.Table, f.Partitions = "events", [][2]string{{"dt", d}}
			for _, ch := range c.Changes(f, loc, s, first && i == 0, first && i == 0) {
				ch.Seq, ch.Stream = seq, "rows.0"
				out = append(out, ch)
			}
		}
		return out
	}
	first := changes(v1, "2026-11-25", 3, true)
	if err := c.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	tbl, err := c.Load(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.CurrentSnapshot()
	if snap == nil || snap.Summary == nil {
		t.Fatal("no snapshot after the first batch")
	}
	if got := snap.Summary.Properties["minipipe.seq"]; got != "3" {
		t.Errorf("summary minipipe.seq %q, want 3 (%v)", got, snap.Summary.Properties)
	}
	if got := snap.Summary.Properties["minipipe.sources"]; got != "events:abc:0@100-399" {
		t.Errorf("summary minipipe.sources %q", got)
	}
	if got := snap.Summary.Properties["total-records"]; got != "300" {
		t.Errorf("total-records %q, want 300", got)
	}
	if got, err := iceberg.Applied(tbl, "rows.0"); got != 3 || err != nil {
		t.Errorf("applied %d (%v), want 3", got, err)
	}
	if spec := tbl.Spec(); spec.NumFields() != 1 {
		t.Errorf("partition spec %v, want identity(dt)", spec)
	}

	// The same batch again (a retry after an unknown outcome): nothing added.
	if err := c.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if tbl, _ = c.Load(ctx, "events"); len(tbl.Metadata().Snapshots()) != 1 {
		t.Fatalf("%d snapshots after applying the batch twice, want 1", len(tbl.Metadata().Snapshots()))
	}

	// Two catalogs (the owner and a zombie) race to apply the next batch, with overlap.
	second := changes(v1, "2026-11-26", 4, true)
	other := open()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cat := c
			if i%2 == 1 {
				cat = other
			}
			errs[i] = cat.Apply(ctx, append(append([]manifest.CatalogChange{}, first...), second...))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("a racing apply: %v", err)
		}
	}
	tbl, _ = c.Load(ctx, "events")
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != "700" {
		t.Fatalf("total-records %q after the race, want 700", got)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("%d snapshots after the race, want 2", n)
	}

	// A newer schema adds its column; older files read it as null.
	third := changes(v2, "2026-11-26", 1, true)
	if err := c.Apply(ctx, third); err != nil {
		t.Fatal(err)
	}
	tbl, _ = c.Load(ctx, "events")
	if _, ok := tbl.Schema().FindFieldByName("note"); !ok {
		t.Errorf("schema %v lacks the new column note", tbl.Schema())
	}
	if _, ok := tbl.Schema().FindFieldByName("dt"); !ok {
		t.Errorf("schema %v lacks the partition column dt", tbl.Schema())
	}
	files := map[string]bool{}
	scan := tbl.Scan()
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if files[task.File.FilePath()] {
			t.Errorf("file %s twice in the table", task.File.FilePath())
		}
		files[task.File.FilePath()] = true
	}
	if len(files) != 8 {
		t.Errorf("%d files in the table, want 8", len(files))
	}
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != "800" {
		t.Errorf("total-records %q, want 800", got)
	}
}

// TestAbandonedLock: with --iceberg-hive-locks, a writer killed while holding the table's metastore lock
// (a SIGKILLed process never releases it) does not block the table for good:
// the project's metastore frees the lock after its transaction timeout and the next batch goes in.
func TestAbandonedLock(t *testing.T) {
	uri, root, wh, db := testWarehouse(t, "icelock")
	c := openCatalog(t, uri, db, wh, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	batch := func(seq uint64, first bool) []manifest.CatalogChange {
		f := writeFile(t, root, fmt.Sprintf("t/dt=2026-11-25/f%d.parquet", seq), v1, int(seq)*10, 10)
		f.Table, f.Partitions = "t", [][2]string{{"dt", "2026-11-25"}}
		out := c.Changes(f, wh.URI("t"), v1, first, first)
		for i := range out {
			out[i].Seq, out[i].Stream = seq, "rows.0"
		}
		return out
	}
	if err := c.Apply(ctx, batch(1, true)); err != nil {
		t.Fatal(err)
	}
	// A "dead writer" takes the table's exclusive lock and never releases it (its connection closes).
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second}
	tr := thrift.NewTBufferedTransport(thrift.NewTSocketConf(strings.TrimPrefix(uri, "thrift://"), cfg), 64<<10)
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	cl := hive_metastore.NewThriftHiveMetastoreClientFactory(tr, thrift.NewTBinaryProtocolFactoryConf(cfg))
	name := "t"
	r, err := cl.Lock(ctx, &hive_metastore.LockRequest{User: "dead", Hostname: "localhost",
		Component: []*hive_metastore.LockComponent{{Type: hive_metastore.LockType_EXCLUSIVE, Level: hive_metastore.LockLevel_TABLE, Dbname: db, Tablename: &name}}})
	if err != nil || r.State != hive_metastore.LockState_ACQUIRED {
		t.Fatalf("the dead writer's lock: %v %v", r, err)
	}
	tr.Close()
	start := time.Now()
	for {
		err := c.Apply(ctx, batch(2, false))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the table stays locked by a dead writer: %v", err)
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Second), err)
		time.Sleep(time.Second)
	}
	tbl, err := c.Load(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != "20" {
		t.Fatalf("total-records %q, want 20", got)
	}
	t.Logf("the abandoned lock was freed and the batch committed after %v", time.Since(start).Round(time.Second))
}

// TestConcurrentStreams: four commit partitions (streams) commit batches of files to one table at once, as
// many instances do; every batch goes in exactly once, and the test reports the snapshots per second the
// metastore sustains under that contention.
func TestConcurrentStreams(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) { concurrentStreams(t, kind) })
	}
}

func concurrentStreams(t *testing.T, kind string) {
	uri, root, wh, db := testWarehouseOn(t, "icecc", kind)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	defer iceberg.SetExpiry(12, 8, 0)()
	const streams, batches, perBatch = 4, 10, 8
	// The files first: the test times the commits.
	type batch []manifest.CatalogChange
	work := make([][]batch, streams)
	cats := make([]*iceberg.Catalog, streams)
	for s := range streams {
		c := openCatalog(t, uri, db, wh, false)
		cats[s] = c
		seq := uint64(0)
		for b := range batches {
			var chs batch
			for f := range perBatch {
				seq++
				day := fmt.Sprintf("2026-11-%02d", 10+(s+b+f)%8)
				mf := writeFile(t, root, fmt.Sprintf("t/dt=%s/s%d-%d.parquet", day, s, seq), v1, (s*1000+int(seq))*10, 10)
				mf.Table, mf.Partitions = "t", [][2]string{{"dt", day}}
				for _, ch := range c.Changes(mf, wh.URI("t"), v1, seq == 1, seq == 1) {
					ch.Seq, ch.Stream = seq, fmt.Sprintf("rows.%d", s)
					chs = append(chs, ch)
				}
			}
			work[s] = append(work[s], chs)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, streams)
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range work[s] {
				for {
					err := cats[s].Apply(ctx, b)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						errs[s] = err
						return
					}
					t.Logf("stream %d: %v (retrying, as the applier does)", s, err)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tbl, err := cats[0].Load(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(streams * batches * perBatch * 10)
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != want {
		t.Fatalf("total-records %s, want %s", got, want)
	}
	n := len(tbl.Metadata().Snapshots())
	if n > 12 {
		t.Errorf("%d snapshots kept; the automatic expiry keeps the last 8 once there are more than 12", n)
	}
	t.Logf("%d streams committed %d snapshots (%d files) in %v: %.1f snapshots/s; %d snapshots kept", streams, streams*batches,
		streams*batches*perBatch, took.Round(time.Millisecond), float64(streams*batches)/took.Seconds(), n)
}

// TestCompact: six small files over two days become one file per day in one replace snapshot; the rows,
// their ids and their days are unchanged, a --partition compacts only its day, and a later append still
// lands next to the compacted files.
func TestCompact(t *testing.T) {
	uri, root, wh, db := testWarehouse(t, "icecompact")
	c := openCatalog(t, uri, db, wh, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seq := uint64(0)
	add := func(s *arrow.Schema, day string, files int) {
		var chs []manifest.CatalogChange
		for range files {
			seq++
			f := writeFile(t, root, fmt.Sprintf("t/dt=%s/f%d.parquet", day, seq), s, int(seq)*100, 100)
			f.Table, f.Partitions = "t", [][2]string{{"dt", day}}
			for _, ch := range c.Changes(f, wh.URI("t"), s, true, true) {
				ch.Seq, ch.Stream = seq, "rows.0"
				chs = append(chs, ch)
			}
		}
		if err := c.Apply(ctx, chs); err != nil {
			t.Fatal(err)
		}
	}
	add(v1, "2026-11-24", 3)
	add(v2, "2026-11-24", 1) // a newer schema in the same day
	add(v1, "2026-11-25", 2)
	// rows reads every row as id → day|note.
	rows := func() map[int64]string {
		t.Helper()
		tbl, err := c.Load(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		at, err := tbl.Scan().ToArrowTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer at.Release()
		out := map[int64]string{}
		tr := array.NewTableReader(at, 0)
		defer tr.Release()
		for tr.Next() {
			rec := tr.RecordBatch()
			s := rec.Schema()
			col := func(name string) arrow.Array {
				idx := s.FieldIndices(name)
				if len(idx) == 0 {
					t.Fatalf("no column %s in %v", name, s)
				}
				return rec.Column(idx[0])
			}
			ids, dts, notes := col("id").(*array.Int64), col("dt").(*array.String), col("note").(*array.String)
			for i := 0; i < int(rec.NumRows()); i++ {
				if _, dup := out[ids.Value(i)]; dup {
					t.Fatalf("id %d twice", ids.Value(i))
				}
				// iceberg-go reads dt only where a file holds it (a compaction's files do), as the partition.
				if want := map[bool]string{true: "2026-11-24", false: "2026-11-25"}[ids.Value(i) < 500]; dts.IsValid(i) && dts.Value(i) != want {
					t.Fatalf("id %d has dt %s, want %s", ids.Value(i), dts.Value(i), want)
				}
				out[ids.Value(i)] = notes.ValueStr(i)
			}
		}
		return out
	}
	files := func() int {
		t.Helper()
		tbl, err := c.Load(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			// minipipe's files do not hold dt; a compaction must keep the partition's value.
			if p := fmt.Sprint(task.File.Partition()); !strings.Contains(p, "2026-11-2") {
				t.Fatalf("file %s is in partition %s", task.File.FilePath(), p)
			}
		}
		return len(tasks)
	}
	before := rows()
	if len(before) != 600 || files() != 6 {
		t.Fatalf("%d rows in %d files before, want 600 in 6", len(before), files())
	}
	r, err := c.Compact(ctx, "t", iceberg.CompactOptions{Partition: "dt=2026-11-24"})
	if err != nil {
		t.Fatal(err)
	}
	if r.FilesBefore != 4 || r.FilesAfter != 1 || files() != 3 {
		t.Fatalf("compacting one day: %+v, %d files now; want 4 → 1, 3 in all", r, files())
	}
	r, err = c.Compact(ctx, "t", iceberg.CompactOptions{ExpireOlderThan: time.Nanosecond, RetainLast: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.FilesBefore != 2 || r.FilesAfter != 1 || files() != 2 || r.Expired == 0 {
		t.Fatalf("compacting the rest: %+v, %d files now; want 2 → 1, 2 in all, snapshots expired", r, files())
	}
	after := rows()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the rows changed in the compaction")
	}
	add(v1, "2026-11-24", 1)
	if got := len(rows()); got != 700 || files() != 3 {
		t.Fatalf("after an append: %d rows in %d files, want 700 in 3", got, files())
	}
	t.Logf("6 files → 2, %d rows unchanged (days and the newer schema's column included)", len(before))
}

// TestGuardRefusesABatchAppliedMeanwhile: between the moment a catalog builds a batch's snapshot and its
// commit, another catalog (a zombie owner of the same commit partition) commits the same batch. The first
// commit is refused by the guard (not replayed onto the new table), the batch is in the table once, and a
// later batch still goes in.
func TestGuardRefusesABatchAppliedMeanwhile(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) { guardRefusesABatchAppliedMeanwhile(t, kind) })
	}
}

func guardRefusesABatchAppliedMeanwhile(t *testing.T, kind string) {
	uri, root, wh, db := testWarehouseOn(t, "iceguard", kind)
	open := func() *iceberg.Catalog { return openCatalog(t, uri, db, wh, false) }
	owner, zombie := open(), open()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seq := uint64(0)
	batch := func(n int, first bool) []manifest.CatalogChange {
		var out []manifest.CatalogChange
		for i := range n {
			seq++
			f := writeFile(t, root, fmt.Sprintf("g/dt=2026-11-25/f%d.parquet", seq), v1, int(seq)*100, 100)
			f.Table, f.Partitions = "g", [][2]string{{"dt", "2026-11-25"}}
			for _, ch := range owner.Changes(f, wh.URI("g"), v1, first && i == 0, first && i == 0) {
				ch.Seq, ch.Stream = seq, "rows.7"
				out = append(out, ch)
			}
		}
		return out
	}
	if err := owner.Apply(ctx, batch(2, true)); err != nil {
		t.Fatal(err)
	}
	second := batch(3, false)
	fired := 0
	restore := iceberg.SetBeforeCommit(func() {
		fired++
		if fired == 1 {
			if err := zombie.Apply(ctx, second); err != nil {
				t.Errorf("the zombie's apply: %v", err)
			}
		}
	})
	err := owner.Apply(ctx, second)
	restore()
	if err != nil {
		t.Fatal(err)
	}
	if fired < 2 {
		t.Fatalf("the hook ran %d times; want the owner's and the zombie's", fired)
	}
	tbl, err := owner.Load(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != "500" {
		t.Fatalf("total-records %q, want 500: the batch went in twice or not at all", got)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Fatalf("%d snapshots, want 2", n)
	}
	if err := owner.Apply(ctx, batch(1, false)); err != nil {
		t.Fatal(err)
	}
	tbl, _ = owner.Load(ctx, "g")
	if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != "600" {
		t.Fatalf("total-records %q after the next batch, want 600", got)
	}
}

// TestConcurrentCreateWithTwoSchemas: two commit partitions create a new table at once, one with the first
// schema and one with the second (a column more); the table ends with both schemas' columns and a name
// mapping that has the new column, and a scan reads its values.
func TestConcurrentCreateWithTwoSchemas(t *testing.T) {
	uri, root, wh, db := testWarehouse(t, "icecreate")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*arrow.Schema{v1, v2} {
		c := openCatalog(t, uri, db, wh, false)
		f := writeFile(t, root, fmt.Sprintf("c/dt=2026-11-25/s%d.parquet", i), s, i*1000, 100)
		f.Table, f.Partitions = "c", [][2]string{{"dt", "2026-11-25"}}
		chs := c.Changes(f, wh.URI("c"), s, true, true)
		for j := range chs {
			chs[j].Seq, chs[j].Stream = 1, fmt.Sprintf("rows.%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 20; attempt++ {
				if errs[i] = c.Apply(ctx, chs); errs[i] == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := openCatalog(t, uri, db, wh, false)
	tbl, err := c.Load(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.Schema().FindFieldByName("note"); !ok {
		t.Fatalf("schema %v lacks note", tbl.Schema())
	}
	if m := tbl.Properties()["schema.name-mapping.default"]; !strings.Contains(m, `"note"`) {
		t.Fatalf("the name mapping lacks note: %s", m)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	notes := 0
	idx := at.Schema().FieldIndices("note")
	for _, chunk := range at.Column(idx[0]).Data().Chunks() {
		notes += chunk.Len() - chunk.NullN()
	}
	if at.NumRows() != 200 || notes != 100 {
		t.Fatalf("%d rows, %d notes; want 200 rows, 100 notes (the second schema's file)", at.NumRows(), notes)
	}
}

// TestTableWithoutNameMapping: a table another writer made without a name mapping gets one (for the schema
// it has) before minipipe's files, which carry no field ids, go in; a scan reads their values.
func TestTableWithoutNameMapping(t *testing.T) {
	uri, root, wh, db := testWarehouse(t, "icebare")
	c := openCatalog(t, uri, db, wh, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateBare(ctx, "b", wh.URI("b"), v2); err != nil {
		t.Fatal(err)
	}
	f := writeFile(t, root, "b/f1.parquet", v2, 0, 100)
	f.Table = "b"
	chs := c.Changes(f, wh.URI("b"), v2, true, true)
	for i := range chs {
		chs[i].Seq, chs[i].Stream = 1, "rows.0"
	}
	if err := c.Apply(ctx, chs); err != nil {
		t.Fatal(err)
	}
	tbl, err := c.Load(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if tbl.NameMapping() == nil {
		t.Fatal("no name mapping")
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	idx := at.Schema().FieldIndices("note")
	notes := 0
	for _, chunk := range at.Column(idx[0]).Data().Chunks() {
		notes += chunk.Len() - chunk.NullN()
	}
	if at.NumRows() != 100 || notes != 100 {
		t.Fatalf("%d rows, %d notes; want 100 of each", at.NumRows(), notes)
	}
}

// A REST catalog URI with credentials, a query or a fragment in it (iceberg-go would send the query with every
// call and print it in its errors), or not http(s), is refused without echoing the secret.
func TestRESTURIRefused(t *testing.T) {
	wh, err := fs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"http://user:s3cr3t@127.0.0.1:8181", "thrift://127.0.0.1:9083", "http://", "http://127.0.0.1:8181/?token=s3cr3t",
		"http://127.0.0.1:8181/#s3cr3t"} {
		_, err := iceberg.New(iceberg.Config{REST: uri, Database: "db", FS: wh})
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

// writeTimedFile writes n rows (id, ts) whose ts fall in the UTC day day, as minipipe's commit stage writes a
// file of that day's partition (dt=day) of a table partitioned by day(ts).
func writeTimedFile(t *testing.T, root, name string, day time.Time, from, n int) manifest.File {
	t.Helper()
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i := from; i < from+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(day.Add(time.Duration(i%24) * time.Hour).UnixMilli()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(s, &buf, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return manifest.File{Table: "timed", Final: name, Rows: int64(n), Bytes: int64(buf.Len()), Partitions: [][2]string{{"dt", day.Format("2006-01-02")}},
		Sources: []manifest.SourceRange{{Source: "timed:abc:0", First: int64(from), Last: int64(from + n - 1), Count: int64(n)}}}
}

// TestHiddenPartitioning: --partition-by day(ts) makes an Iceberg table partitioned by day(ts) with no dt
// column; each file's partition value is its day, so a scan filtered on ts plans the files of that day alone
// and reads their rows. A pipeline that partitions otherwise is refused rather than mislabel files.
func TestHiddenPartitioning(t *testing.T) {
	uri, root, wh, db := testWarehouse(t, "icehidden")
	cfg := iceberg.Config{Metastore: uri, Database: db, FS: wh, Hidden: func(string) (string, string) { return "day", "ts" }}
	c, err := iceberg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cols := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}}}, nil)
	d1 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	d2 := d1.AddDate(0, 0, 1)
	var changes []manifest.CatalogChange
	for i, day := range []time.Time{d1, d2, d2} {
		f := writeTimedFile(t, root, fmt.Sprintf("timed/dt=%s/f%d.parquet", day.Format("2006-01-02"), i), day, i*100, 100)
		for _, ch := range c.Changes(f, wh.URI("timed"), cols, i == 0, i == 0) {
			ch.Seq, ch.Stream = uint64(i+1), "rows.0"
			changes = append(changes, ch)
		}
	}
	if err := c.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	tbl, err := c.Load(ctx, "timed")
	if err != nil {
		t.Fatal(err)
	}
	spec := tbl.Spec()
	if spec.NumFields() != 1 || spec.Field(0).Transform.String() != "day" || spec.Field(0).Name != "ts_day" {
		t.Fatalf("partition spec %v, want day(ts)", spec)
	}
	if _, ok := tbl.Schema().FindFieldByName("dt"); ok {
		t.Fatalf("schema %v has a dt column: the partitioning is not hidden", tbl.Schema())
	}
	count := func(filter icebergsdk.BooleanExpression) (files int, rows int64) {
		t.Helper()
		scan := tbl.Scan(table.WithRowFilter(filter))
		tasks, err := scan.PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, itr, err := scan.ToArrowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for rec, err := range itr {
			if err != nil {
				t.Fatal(err)
			}
			rows += rec.NumRows()
			rec.Release()
		}
		return len(tasks), rows
	}
	ts := func(t time.Time) icebergsdk.Timestamp { return icebergsdk.Timestamp(t.UnixMicro()) }
	ref := icebergsdk.Reference("ts")
	if files, rows := count(icebergsdk.NewAnd(icebergsdk.GreaterThanEqual(ref, ts(d2)), icebergsdk.LessThan(ref, ts(d2.AddDate(0, 0, 1))))); files != 2 || rows != 200 {
		t.Fatalf("ts within %s: %d files, %d rows; want the day's 2 files and 200 rows", d2.Format("2006-01-02"), files, rows)
	}
	if files, rows := count(icebergsdk.LessThan(ref, ts(d2))); files != 1 || rows != 100 {
		t.Fatalf("ts before %s: %d files, %d rows; want 1 and 100", d2.Format("2006-01-02"), files, rows)
	}
	if files, _ := count(icebergsdk.GreaterThanEqual(ref, ts(d2.AddDate(0, 0, 1)))); files != 0 {
		t.Fatalf("ts after both days: %d files planned, want none", files)
	}
	// Compacting a day merges its files and keeps its rows; an hour of a day-partitioned table is refused (its
	// files hold the whole day).
	if _, err := c.Compact(ctx, "timed", iceberg.CompactOptions{Partition: "dt=2026-11-26/hr=00"}); err == nil || !strings.Contains(err.Error(), "day(ts)") {
		t.Fatalf("compacting an hour of a day(ts) table: %v", err)
	}
	res, err := c.Compact(ctx, "timed", iceberg.CompactOptions{Partition: "dt=2026-11-26"})
	if err != nil || res.FilesBefore != 2 || res.FilesAfter != 1 {
		t.Fatalf("compacting a day: %+v %v", res, err)
	}
	if tbl, err = c.Load(ctx, "timed"); err != nil {
		t.Fatal(err)
	}
	if files, rows := count(icebergsdk.NewAnd(icebergsdk.GreaterThanEqual(ref, ts(d2)), icebergsdk.LessThan(ref, ts(d2.AddDate(0, 0, 1))))); files != 1 || rows != 200 {
		t.Fatalf("after the compaction, ts within %s: %d files, %d rows; want 1 and 200", d2.Format("2006-01-02"), files, rows)
	}
	// The pipeline now partitions by hour: its files' dt and hr would say nothing of the table's day(ts).
	c2, err := iceberg.New(iceberg.Config{Metastore: uri, Database: db, FS: wh, Hidden: func(string) (string, string) { return "", "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	f := writeTimedFile(t, root, "timed/dt=2026-11-27/f9.parquet", d2.AddDate(0, 0, 1), 900, 10)
	var more []manifest.CatalogChange
	for _, ch := range c2.Changes(f, wh.URI("timed"), cols, false, false) {
		ch.Seq, ch.Stream = 4, "rows.0"
		more = append(more, ch)
	}
	if err := c2.Apply(ctx, more); err == nil || !strings.Contains(err.Error(), "day(ts)") {
		t.Fatalf("a pipeline partitioning otherwise was not refused: %v", err)
	}
}

// TestNestedColumns: a table with a struct column, on both catalogs. A REST catalog numbers a new table's
// fields itself (breadth-first, where iceberg-go goes depth-first); the name mapping must still be the table's,
// or readers would take one column's values for another's.
func TestNestedColumns(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) {
			uri, root, wh, db := testWarehouseOn(t, "icenest", kind)
			c := openCatalog(t, uri, db, wh, false)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			addr := arrow.StructOf(arrow.Field{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true}, arrow.Field{Name: "zip", Type: arrow.BinaryTypes.String, Nullable: true})
			s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "addr", Type: addr, Nullable: true},
				{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
			rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, s, strings.NewReader(`[{"id":1,"addr":{"city":"lyon","zip":"69001"},"n":10},{"id":2,"addr":{"city":"oslo","zip":"0150"},"n":20}]`))
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Release()
			var buf bytes.Buffer
			w, err := pqarrow.NewFileWriter(s, &buf, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			name := "nest/dt=2026-11-25/f1.parquet"
			if err := os.MkdirAll(filepath.Join(root, "nest/dt=2026-11-25"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, name), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			f := manifest.File{Table: "nest", Final: name, Rows: 2, Bytes: int64(buf.Len()), Partitions: [][2]string{{"dt", "2026-11-25"}},
				Sources: []manifest.SourceRange{{Source: "nest:abc:0", First: 0, Last: 1, Count: 2}}}
			var chs []manifest.CatalogChange
			for _, ch := range c.Changes(f, wh.URI("nest"), s, true, true) {
				ch.Seq, ch.Stream = 1, "rows.0"
				chs = append(chs, ch)
			}
			if err := c.Apply(ctx, chs); err != nil {
				t.Fatal(err)
			}
			tbl, err := c.Load(ctx, "nest")
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := json.Marshal(tbl.Schema().NameMapping()); tbl.Properties()[table.DefaultNameMappingKey] != string(m) {
				t.Fatalf("the name mapping %s is not the schema's %s", tbl.Properties()[table.DefaultNameMappingKey], m)
			}
			_, itr, err := tbl.Scan(table.WithSelectedFields("id", "addr", "n")).ToArrowRecords(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for r, err := range itr {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := r.MarshalJSON()
				got = append(got, string(b))
				r.Release()
			}
			if all := strings.Join(got, ""); !strings.Contains(all, `"city":"lyon"`) || !strings.Contains(all, `"n":20`) || !strings.Contains(all, `"zip":"0150"`) {
				t.Fatalf("read %s", all)
			}
		})
	}
}
