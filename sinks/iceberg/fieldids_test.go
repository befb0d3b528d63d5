package iceberg_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go/table"

	"github.com/minipipe/minipipe/sinks/iceberg"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// fieldIDs lists a schema's fields (nested ones by dotted path) with their PARQUET:field_id.
func fieldIDs(fields []arrow.Field, prefix string, out map[string]string) map[string]string {
	for _, f := range fields {
		path := prefix + f.Name
		id, _ := f.Metadata.GetValue(table.ArrowParquetFieldIDKey)
		out[path] = id
		switch t := f.Type.(type) {
		case *arrow.StructType:
			fieldIDs(t.Fields(), path+".", out)
		case *arrow.ListType:
			e := t.ElemField()
			e.Name = "element"
			fieldIDs([]arrow.Field{e}, path+".", out)
		case *arrow.MapType:
			fieldIDs([]arrow.Field{t.KeyField(), t.ItemField()}, path+".", out)
		}
	}
	return out
}

// parquetFile writes rec's rows (JSON) as a Parquet file of schema s at name under root, and returns it as a
// committed file.
func parquetFile(t *testing.T, root, name string, s *arrow.Schema, rows string, n int) manifest.File {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, s, strings.NewReader(rows))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(s, &buf, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file itself carries the ids.
	r, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	read, err := pqarrow.FromParquet(r.MetaData().Schema, nil, r.MetaData().KeyValueMetadata())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fieldIDs(read.Fields(), "", map[string]string{}), fieldIDs(s.Fields(), "", map[string]string{}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the Parquet file's field ids %v are not its columns' %v", got, want)
	}
	return manifest.File{Table: "fid", Final: name, Rows: int64(n), Bytes: int64(buf.Len()), Partitions: [][2]string{{"dt", "2026-11-29"}},
		Sources: []manifest.SourceRange{{Source: "fid:abc:0", First: 0, Last: int64(n - 1), Count: int64(n)}}}
}

// TestFieldIDs numbers a file's columns as the table does, nested ones too, and follows another engine's
// renames: the old name of a renamed column (kept by the name mapping) resolves to the renamed column,
// which is not added again, and the table reads the files of both names in it.
func TestFieldIDs(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) {
			uri, root, wh, db := testWarehouseOn(t, "icefid", kind)
			c := openCatalog(t, uri, db, wh, false)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			addr := arrow.StructOf(arrow.Field{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true}, arrow.Field{Name: "zip", Type: arrow.BinaryTypes.String, Nullable: true})
			attrs := arrow.MapOf(arrow.BinaryTypes.String, arrow.StructOf(arrow.Field{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}))
			attrs.SetItemNullable(true)
			cols := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
				{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: "addr", Type: addr, Nullable: true},
				{Name: "tags", Type: arrow.ListOfField(arrow.Field{Name: "element", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
				{Name: "attrs", Type: attrs, Nullable: true}}, nil)
			f := manifest.File{Table: "fid", Partitions: [][2]string{{"dt", "2026-11-29"}}}
			location := wh.URI("fid")

			numbered, err := c.FieldIDs(ctx, f, location, cols)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := c.Load(ctx, "fid")
			if err != nil {
				t.Fatal(err)
			}
			ids := fieldIDs(numbered.Fields(), "", map[string]string{})
			if len(ids) != 11 {
				t.Fatalf("numbered %d fields, want 11: %v", len(ids), ids)
			}
			for path, id := range ids {
				nf, ok := tbl.Schema().FindFieldByName(path)
				if !ok || strconv.Itoa(nf.ID) != id {
					t.Fatalf("field %s numbered %q; the table's is %v (%v)", path, id, nf.ID, ok)
				}
			}
			t.Logf("field ids %v", ids)

			apply := func(seq uint64, mf manifest.File, cols *arrow.Schema) {
				t.Helper()
				var chs []manifest.CatalogChange
				for _, ch := range c.Changes(mf, location, cols, seq == 1, seq == 1) {
					ch.Seq, ch.Stream = seq, "rows.0"
					chs = append(chs, ch)
				}
				if err := c.Apply(ctx, chs); err != nil {
					t.Fatal(err)
				}
			}
			row := func(id int, name, city string) string {
				return fmt.Sprintf(`{"id":%d,"name":%q,"addr":{"city":%q,"zip":"z"},"tags":["a"],"attrs":[{"key":"k","value":{"v":%d}}]}`, id, name, city, id)
			}
			apply(1, parquetFile(t, root, "fid/dt=2026-11-29/f1.parquet", numbered, "["+row(1, "alice", "lyon")+"]", 1), numbered)

			// Another engine renames name and addr.city (Iceberg keeps the old names in the mapping).
			if tbl, err = c.Load(ctx, "fid"); err != nil {
				t.Fatal(err)
			}
			txn := tbl.NewTransaction()
			if err := txn.UpdateSchema(true, false, table.WithNameMapping(tbl.NameMapping())).
				RenameColumn([]string{"name"}, "full_name").RenameColumn([]string{"addr", "city"}, "town").Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := txn.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// The stream still says name and city: they land in full_name and town, not in new columns.
			again, err := c.FieldIDs(ctx, f, location, cols)
			if err != nil {
				t.Fatal(err)
			}
			if got := fieldIDs(again.Fields(), "", map[string]string{}); fmt.Sprint(got) != fmt.Sprint(ids) {
				t.Fatalf("after the renames the stream's columns are numbered %v, not %v", got, ids)
			}
			apply(2, parquetFile(t, root, "fid/dt=2026-11-29/f2.parquet", again, "["+row(2, "bob", "oslo")+"]", 1), cols)
			if tbl, err = c.Load(ctx, "fid"); err != nil {
				t.Fatal(err)
			}
			if got := len(tbl.Schema().Fields()); got != 6 { // the five columns and dt
				t.Fatalf("the table has %d columns after the renames, want 6: %v", got, tbl.Schema())
			}
			got := scanJSON(ctx, t, tbl, "id", "full_name", "addr")
			if !strings.Contains(got, `"full_name":"alice"`) || !strings.Contains(got, `"full_name":"bob"`) ||
				!strings.Contains(got, `"town":"lyon"`) || !strings.Contains(got, `"town":"oslo"`) {
				t.Fatalf("after the renames the table reads %s", got)
			}

			// A stream with both names: name is a column of its own again, and the mapping gives it to it.
			both := arrow.NewSchema(append(slices.Clone(cols.Fields()), arrow.Field{Name: "full_name", Type: arrow.BinaryTypes.String, Nullable: true}), nil)
			third, err := c.FieldIDs(ctx, f, location, both)
			if err != nil {
				t.Fatal(err)
			}
			tids := fieldIDs(third.Fields(), "", map[string]string{})
			if tids["full_name"] != ids["name"] || tids["name"] == ids["name"] || tids["name"] == "" {
				t.Fatalf("with both names: %v (first %v)", tids, ids)
			}
			if tbl, err = c.Load(ctx, "fid"); err != nil {
				t.Fatal(err)
			}
			if !iceberg.MappingFits(tbl.NameMapping(), tbl.Schema()) {
				t.Fatalf("the name mapping %v does not fit the schema %v", tbl.NameMapping(), tbl.Schema())
			}
		})
	}
}

// scanJSON reads the table's selected columns as JSON rows.
func scanJSON(ctx context.Context, t *testing.T, tbl *table.Table, cols ...string) string {
	t.Helper()
	_, itr, err := tbl.Scan(table.WithSelectedFields(cols...)).ToArrowRecords(ctx)
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
	return strings.Join(got, "")
}

// TestFieldIDsTableMadeAgain: a file numbered by a table dropped by hand since is not added with ids that
// name other columns in the table made again: a copy numbered by the new table is added instead.
func TestFieldIDsTableMadeAgain(t *testing.T) {
	for _, kind := range []string{"hive", "rest"} {
		t.Run(kind, func(t *testing.T) {
			uri, root, wh, db := testWarehouseOn(t, "iceagain", kind)
			c := openCatalog(t, uri, db, wh, false)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			str := func(name string) arrow.Field {
				return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
			}
			v1 := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, str("name")}, nil)
			v2 := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, str("name"), str("email"), str("phone")}, nil)
			f := manifest.File{Table: "fid", Partitions: [][2]string{{"dt", "2026-11-29"}}}
			location := wh.URI("fid")
			if _, err := c.FieldIDs(ctx, f, location, v1); err != nil {
				t.Fatal(err)
			}
			n2, err := c.FieldIDs(ctx, f, location, v2)
			if err != nil {
				t.Fatal(err)
			}
			before := fieldIDs(n2.Fields(), "", map[string]string{})
			mf := parquetFile(t, root, "fid/dt=2026-11-29/f1.parquet", n2, `[{"id":1,"name":"ann","email":"ann@x","phone":"555"}]`, 1)
			if err := c.DropTable(ctx, "fid"); err != nil {
				t.Fatal(err)
			}
			var chs []manifest.CatalogChange
			for _, ch := range c.Changes(mf, location, n2, true, true) {
				ch.Seq, ch.Stream = 1, "rows.0"
				chs = append(chs, ch)
			}
			if err := c.Apply(ctx, chs); err != nil {
				t.Fatal(err)
			}
			tbl, err := c.Load(ctx, "fid")
			if err != nil {
				t.Fatal(err)
			}
			email, _ := tbl.Schema().FindFieldByName("email")
			if strconv.Itoa(email.ID) == before["email"] {
				t.Fatalf("the table made again numbers email %d as the dropped one did: the test proves nothing", email.ID)
			}
			got := scanJSON(ctx, t, tbl, "id", "name", "email", "phone")
			if !strings.Contains(got, `"email":"ann@x"`) || !strings.Contains(got, `"phone":"555"`) {
				t.Fatalf("the table made again reads %s (the file was numbered %v)", got, before)
			}
			files := scanFiles(ctx, t, tbl)
			if len(files) != 1 || !strings.Contains(files[0], "/_minipipe/iceberg-renumbered/") {
				t.Fatalf("the table lists %v, want the renumbered copy", files)
			}
			t.Logf("numbered %v by the dropped table; the table made again reads %s from %s", before, got, files[0])
		})
	}
}

// scanFiles lists the data files of the table's current snapshot.
func scanFiles(ctx context.Context, t *testing.T, tbl *table.Table) []string {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		out = append(out, task.File.FilePath())
	}
	return out
}

// TestPartitionColumnRenamed: another engine renames the identity partition column dt; minipipe's files
// (whose partition still says dt=…) keep their partition value in it.
func TestPartitionColumnRenamed(t *testing.T) {
	uri, root, wh, db := testWarehouseOn(t, "icepart", "hive")
	c := openCatalog(t, uri, db, wh, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cols := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	f := manifest.File{Table: "fid", Partitions: [][2]string{{"dt", "2026-11-29"}}}
	location := wh.URI("fid")
	numbered, err := c.FieldIDs(ctx, f, location, cols)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := c.Load(ctx, "fid")
	if err != nil {
		t.Fatal(err)
	}
	txn := tbl.NewTransaction()
	if err := txn.UpdateSchema(true, false, table.WithNameMapping(tbl.NameMapping())).RenameColumn([]string{"dt"}, "day").Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mf := parquetFile(t, root, "fid/dt=2026-11-29/f1.parquet", numbered, `[{"id":1}]`, 1)
	var chs []manifest.CatalogChange
	for _, ch := range c.Changes(mf, location, numbered, true, true) {
		ch.Seq, ch.Stream = 1, "rows.0"
		chs = append(chs, ch)
	}
	if err := c.Apply(ctx, chs); err != nil {
		t.Fatal(err)
	}
	if tbl, err = c.Load(ctx, "fid"); err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("%d files, %v", len(tasks), err)
	}
	day, _ := tbl.Schema().FindFieldByName("day")
	spec := tbl.Spec()
	var got []any
	for _, pf := range spec.Fields() {
		if pf.SourceID() == day.ID {
			got = append(got, tasks[0].File.Partition()[pf.FieldID])
		}
	}
	if fmt.Sprint(got) != "[2026-11-29]" {
		t.Fatalf("after dt was renamed day the file's partition value is %v (%v)", got, tasks[0].File.Partition())
	}
	if _, ok := tbl.Schema().FindFieldByName("dt"); ok {
		t.Fatalf("dt was added again: %v", tbl.Schema())
	}
}
