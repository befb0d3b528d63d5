package parquet

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetOf writes one record batch as a Parquet file, built from JSON rows.
func parquetOf(t *testing.T, schema *arrow.Schema, rows string) []byte {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema, bytes.NewReader([]byte(rows)))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMergeUnionsColumns(t *testing.T) {
	older := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}, {Name: "name", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	newer := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "note", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	a := parquetOf(t, older, `[{"id":1,"name":"alice"},{"id":2,"name":"bob"}]`)
	b := parquetOf(t, newer, `[{"id":3000000000,"note":"big"}]`)
	var out bytes.Buffer
	rows, err := Merge(context.Background(), &out, [][]byte{a, b}, map[string]string{"k": "v"}, Options{Compression: "zstd"})
	if err != nil || rows != 3 {
		t.Fatalf("merge: %d rows, %v", rows, err)
	}
	r, err := file.NewParquetReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if v := r.MetaData().KeyValueMetadata().FindValue("k"); v == nil || *v != "v" {
		t.Fatalf("metadata: %v", r.MetaData().KeyValueMetadata())
	}
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	var cols []string
	for _, f := range tbl.Schema().Fields() {
		cols = append(cols, f.Name+" "+f.Type.String())
	}
	if got := strings.Join(cols, ", "); got != "id int64, note utf8, name utf8" {
		t.Fatalf("schema %s", got)
	}
	rec := array.NewTableReader(tbl, 10)
	defer rec.Release()
	rec.Next()
	got, _ := rec.RecordBatch().MarshalJSON()
	if want := `[{"id":1,"name":"alice","note":null}
,{"id":2,"name":"bob","note":null}
,{"id":3000000000,"name":null,"note":"big"}
]`; string(got) != want {
		t.Fatalf("rows %s", got)
	}
}

func TestMergeRefusesIncompatibleColumns(t *testing.T) {
	a := parquetOf(t, arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil), `[{"x":1}]`)
	b := parquetOf(t, arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.BinaryTypes.String}}, nil), `[{"x":"one"}]`)
	if _, err := Merge(context.Background(), &bytes.Buffer{}, [][]byte{a, b}, nil, Options{}); !errors.Is(err, ErrNotMergeable) {
		t.Fatalf("merging a long and a string column: %v", err)
	}
	if _, err := Merge(context.Background(), &bytes.Buffer{}, [][]byte{[]byte("PAR1 not parquet")}, nil, Options{}); err == nil {
		t.Fatal("merged a file that is not Parquet")
	}
}
