package parquet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// TestLearnedEncodings: a column whose dictionary overflowed in a table's file is written plain in the
// table's next files (no dictionary page, no hashing), a column of few values keeps its dictionary, another
// table is not affected, and after the wait the column is tried with a dictionary again — kept when its
// values now fit. Every file reads back whole.
func TestLearnedEncodings(t *testing.T) {
	const schema = `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"code","type":"string"},{"name":"text","type":"string"}]}`
	cols, dec, codec := compileSchema(t, schema)
	enc := parquet.NewEncodings()
	rows := 30000
	// write makes one file of table with ids from base; distinct says whether "text" has distinct values.
	write := func(table string, base int, distinct bool) map[string]bool {
		t.Helper()
		r := writeLearned(t, cols, dec, codec, parquet.Options{Compression: "zstd", Encodings: enc, Table: table}, rows, func(i int) string {
			text := "same text"
			if distinct {
				text = fmt.Sprintf("free text number %d of the file", base+i)
			}
			return fmt.Sprintf(`{"id":%d,"code":"c%d","text":%q}`, base+i, i%7, text)
		})
		dict := dictPages(t, r)
		fr, err := pqarrow.NewFileReader(r.Reader, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Release()
		if tbl.NumRows() != int64(rows) {
			t.Fatalf("%d rows read back, want %d", tbl.NumRows(), rows)
		}
		next := int64(base)
		for _, chunk := range tbl.Column(0).Data().Chunks() {
			ids := chunk.(*array.Int64)
			for i := 0; i < ids.Len(); i++ {
				if ids.Value(i) != next {
					t.Fatalf("row %d has id %d", next-int64(base), ids.Value(i))
				}
				next++
			}
		}
		return dict
	}
	want := func(step string, got map[string]bool, id, code, text bool) {
		t.Helper()
		if got["id"] != id || got["code"] != code || got["text"] != text {
			t.Errorf("%s: dictionary pages %v, want id %v code %v text %v", step, got, id, code, text)
		}
	}
	// The first file judges each column on its first batch: ids and free text barely repeat (plain), codes do.
	want("first file", write("a", 0, true), false, true, false)
	// The next 8 files write id and text plain; another table judges afresh.
	for i := 1; i <= 8; i++ {
		want(fmt.Sprintf("file %d", i), write("a", i*rows, true), false, true, false)
	}
	want("another table", write("b", 0, false), false, true, true)
	// Then one file tries dictionaries again: text now repeats and keeps its dictionary, id overflows it (and
	// falls back) and waits twice as long (16 files).
	want("retry", write("a", 9*rows, false), true, true, true)
	for i := 0; i < 16; i++ {
		want(fmt.Sprintf("after retry %d", i), write("a", (10+i)*rows, false), false, true, true)
	}
	want("second retry", write("a", 26*rows, false), true, true, true)

	// A dictionary that holds every value of a small file (10,000 ids: 80 KB, under the page limit) does not
	// fall back, yet only adds indexes to the values: it does not pay, and the next files write the ids plain.
	rows = 10000
	want("small file", write("c", 0, false), false, true, true)
	for i := 1; i <= 8; i++ {
		write("c", i*rows, false)
	}
	want("small file retry", write("c", 9*rows, false), true, true, true)
	want("after small file retry", write("c", 10*rows, false), false, true, true)
}

// writeLearned writes rows rows (row(i) is row i's Avro JSON) into one file with opts and opens it.
func writeLearned(t *testing.T, cols *arrow.Schema, dec *parquet.Decoder, codec *avro.Codec, opts parquet.Options, rows int, row func(i int) string) learned {
	t.Helper()
	var buf bytes.Buffer
	w, err := parquet.NewWriter(&buf, cols, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		bin, err := codec.AppendBinaryFromJSON(nil, []byte(row(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(dec, bin); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.NumRows(); got != int64(rows) {
		t.Fatalf("%d rows in the file, want %d", got, rows)
	}
	return learned{r, w}
}

// learned is a file written by writeLearned, and its writer.
type learned struct {
	*file.Reader
	w *parquet.Writer
}

// dictPages says, per column path of the file's first row group, whether the writer tried a dictionary on
// it: it has a dictionary page, or arrow-go (since v18.6) dropped one that overflowed before its first
// page and wrote the column plain.
func dictPages(t *testing.T, lf learned) map[string]bool {
	t.Helper()
	dict := map[string]bool{}
	if lf.NumRowGroups() == 0 {
		return dict
	}
	rg := lf.MetaData().RowGroup(0)
	for j := 0; j < rg.NumColumns(); j++ {
		cc, err := rg.ColumnChunk(j)
		if err != nil {
			t.Fatal(err)
		}
		path := cc.PathInSchema().String()
		dict[path] = cc.HasDictionaryPage() || lf.w.TriedDictionary(path)
	}
	return dict
}

// TestDictionaryPays: the first-batch judgement.
func TestDictionaryPays(t *testing.T) {
	cases := []struct {
		n, distinct int
		width       float64
		pays        bool
	}{
		{8192, 8192, 8, false},   // ids
		{8192, 4096, 8, true},    // every long twice: 4 + 1.5 bytes a value against 8
		{8192, 7, 12, true},      // codes
		{8192, 8000, 104, false}, // free text
		{8192, 2000, 104, true},  // repeated text
		{100, 100, 8, true},      // too few to tell
	}
	for _, c := range cases {
		if got := parquet.DictionaryPays(c.n, c.distinct, c.width); got != c.pays {
			t.Errorf("%d values, %d distinct, %.0f bytes: pays %v, want %v", c.n, c.distinct, c.width, got, c.pays)
		}
	}
}

// TestLearnedEncodingsNestedAndEmpty: a list's leaf column is learned by its path like any other (it is not
// judged on the first batch: nested), nullable columns are judged on their values only, and a file without
// rows is valid and teaches nothing.
func TestLearnedEncodingsNestedAndEmpty(t *testing.T) {
	const schema = `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},
		{"name":"tags","type":{"type":"array","items":"string"}},{"name":"opt","type":["null","string"]}]}`
	cols, dec, codec := compileSchema(t, schema)
	enc := parquet.NewEncodings()
	write := func(rows, base int) map[string]bool {
		t.Helper()
		return dictPages(t, writeLearned(t, cols, dec, codec, parquet.Options{Compression: "zstd", Encodings: enc, Table: "n"}, rows, func(i int) string {
			opt := `null`
			if i%10 == 0 {
				opt = fmt.Sprintf(`{"string":"o%d"}`, (base+i)%3)
			}
			return fmt.Sprintf(`{"id":%d,"tags":["tag number %d","x"],"opt":%s}`, base+i, base+i, opt)
		}))
	}
	if got := write(0, 0); len(got) != 0 {
		t.Fatalf("a file without rows has column chunks %v", got)
	}
	first := write(30000, 0)
	var leaf string
	for path := range first {
		if strings.HasPrefix(path, "tags.") {
			leaf = path
		}
	}
	if leaf == "" || !first[leaf] || first["id"] || !first["opt"] {
		t.Fatalf("first file: dictionary pages %v; want the list's leaf (tried) and opt (3 values among nulls), not id", first)
	}
	if next := write(30000, 30000); next[leaf] || next["id"] || !next["opt"] {
		t.Fatalf("next file: dictionary pages %v; want only opt", next)
	}
}

// TestLearnedEncodingsSettle: columns whose values barely repeat go back to plain after a file tries the
// dictionary again, whatever their shape: unique longs half of them null (plain stores only the values
// present), unique decimals (stored in 4 bytes, not Arrow's 16), unique strings in files of several row
// groups (their plain size counted once per file, not per row group).
func TestLearnedEncodingsSettle(t *testing.T) {
	cases := []struct {
		name, field string
		value       func(i int) string // the field's JSON value for row i
		rowGroup    int64
	}{
		{"sparse longs", `{"name":"x","type":["null","long"]}`, func(i int) string {
			if i%2 == 0 {
				return "null"
			}
			return fmt.Sprintf(`{"long":%d}`, i)
		}, 0},
		{"decimals", `{"name":"x","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}`, func(i int) string {
			return fmt.Sprintf(`"\u%04x\u%04x\u%04x\u%04x"`, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
		}, 0},
		{"strings in row groups", `{"name":"x","type":"string"}`, func(i int) string {
			return fmt.Sprintf(`"a value of its own, number %d"`, i)
		}, 1500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cols, dec, codec := compileSchema(t, `{"type":"record","name":"r","fields":[`+c.field+`]}`)
			enc := parquet.NewEncodings()
			rows := 20000
			if c.rowGroup > 0 {
				rows = 3000
			}
			for f := 0; f < 12; f++ {
				opts := parquet.Options{Encodings: enc, Table: "t", Compression: "none", RowGroupRows: c.rowGroup}
				hasDict := dictPages(t, writeLearned(t, cols, dec, codec, opts, rows, func(i int) string { return `{"x":` + c.value(f*rows+i) + `}` }))["x"]
				// File 0 may try a dictionary (decimals are not judged on the first batch); file 9 tries it
				// again after 8 plain files; every other file is plain.
				if want := f == 9 || f == 0 && hasDict; hasDict != want {
					t.Errorf("file %d: dictionary page %v, want %v", f, hasDict, want)
				}
			}
		})
	}
}

// sinkDown fails every write.
type sinkDown struct{}

func (sinkDown) Write([]byte) (int, error) { return 0, errSink }

// TestDeadSinkIsAnError: a file whose sink fails at its first bytes (now written with the first batch: a
// staging file on HDFS whose directory a newer owner removed) gives an error, not a panic.
func TestDeadSinkIsAnError(t *testing.T) {
	cols, dec, codec := compileSchema(t, `{"type":"record","name":"r","fields":[{"name":"id","type":"long"}]}`)
	for _, rows := range []int{0, 5, 20} {
		w, err := parquet.NewWriter(sinkDown{}, cols, nil, parquet.Options{BatchRows: 10, Encodings: parquet.NewEncodings(), Table: "t"})
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := 0; i < rows && appendErr == nil; i++ {
			bin, _ := codec.AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d}`, i)))
			appendErr = w.Append(dec, bin)
		}
		closeErr := w.Close()
		if !errors.Is(appendErr, errSink) && !errors.Is(closeErr, errSink) {
			t.Errorf("%d rows into a dead sink: append %v, close %v; want the sink's error", rows, appendErr, closeErr)
		}
	}
}
