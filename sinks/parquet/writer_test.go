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

// compileSchema makes a record schema's columns, its decoder into them and its Avro codec.
func compileSchema(t testing.TB, schema string) (*arrow.Schema, *parquet.Decoder, *avro.Codec) {
	t.Helper()
	s, err := avro.Parse(schema)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := parquet.ArrowSchema(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := parquet.NewDecoder(s, s, cols)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := avro.NewCodec(s)
	if err != nil {
		t.Fatal(err)
	}
	return cols, dec, codec
}

// failingSink takes limit bytes, then fails every write.
type failingSink struct{ n, limit int }

var errSink = errors.New("disk gone")

func (s *failingSink) Write(b []byte) (int, error) {
	if s.n+len(b) > s.limit {
		return 0, errSink
	}
	s.n += len(b)
	return len(b), nil
}

// TestEncoderErrorSurfaces: a write that fails on the encoder's goroutine comes back from a later Append or
// from Close, never lost; Abort after it returns.
func TestEncoderErrorSurfaces(t *testing.T) {
	const schema = `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}`
	cols, dec, codec := compileSchema(t, schema)
	for _, abort := range []bool{false, true} {
		w, err := parquet.NewWriter(&failingSink{limit: 64}, cols, nil, parquet.Options{BatchRows: 10, RowGroupBytes: 1, Compression: "none"})
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := 0; i < 1000 && appendErr == nil; i++ {
			bin, _ := codec.AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d,"s":"row %d of a file whose disk goes away"}`, i, i)))
			appendErr = w.Append(dec, bin)
		}
		if abort {
			w.Abort()
			continue
		}
		closeErr := w.Close()
		if appendErr == nil && closeErr == nil {
			t.Fatal("a file whose sink failed closed without an error")
		}
		if appendErr != nil && !errors.Is(appendErr, errSink) || closeErr != nil && !errors.Is(closeErr, errSink) && appendErr == nil {
			t.Fatalf("append: %v; close: %v; want the sink's error", appendErr, closeErr)
		}
	}
}

// TestCompressionLevels: files written at every supported codec and level read back whole with arrow-go's
// own reader (zstd through minipipe's shared encoders), and levels a codec does not have are refused.
func TestCompressionLevels(t *testing.T) {
	const schema = `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}`
	cols, dec, codec := compileSchema(t, schema)
	cases := []struct {
		codec string
		level int
		ok    bool
	}{
		{"zstd", 0, true}, {"zstd", 1, true}, {"zstd", 3, true}, {"zstd", 7, true}, {"zstd", 19, true},
		{"gzip", 9, true}, {"snappy", 0, true}, {"none", 0, true},
		{"zstd", 23, false}, {"zstd", -1, false}, {"gzip", 10, false}, {"snappy", 1, false},
	}
	const rows = 20000
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%d", c.codec, c.level), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := parquet.NewWriter(&buf, cols, nil, parquet.Options{Compression: c.codec, CompressionLevel: c.level, BatchRows: 3000})
			if !c.ok {
				if err == nil || parquet.CheckLevel(c.codec, c.level) == nil {
					t.Fatalf("level %d of %s accepted", c.level, c.codec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < rows; i++ {
				bin, _ := codec.AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d,"s":"row %d, %d"}`, i, i, i*7919%1000)))
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
			cc, err := r.MetaData().RowGroup(0).ColumnChunk(0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"none": "UNCOMPRESSED"}[c.codec]
			if want == "" {
				want = strings.ToUpper(c.codec)
			}
			if got := cc.Compression().String(); got != want {
				t.Errorf("column chunk compressed with %s, want %s", got, want)
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
			if tbl.NumRows() != rows {
				t.Fatalf("%d rows read back, want %d", tbl.NumRows(), rows)
			}
			next := int64(0)
			for _, chunk := range tbl.Column(0).Data().Chunks() {
				ids := chunk.(*array.Int64)
				for i := 0; i < ids.Len(); i++ {
					if ids.Value(i) != next {
						t.Fatalf("row %d has id %d", next, ids.Value(i))
					}
					next++
				}
			}
		})
	}
}

// TestRefusedRowLeavesFileIntact: a record that fails after some of its fields were appended is refused
// with a RowError and leaves nothing behind; the rows before and after it, in the same batch and in later
// ones, are all in the file, in order, and batches keep their size.
func TestRefusedRowLeavesFileIntact(t *testing.T) {
	const schema = `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}`
	cols, dec, codec := compileSchema(t, schema)
	var buf bytes.Buffer
	w, err := parquet.NewWriter(&buf, cols, nil, parquet.Options{BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i := 0; i < 1000; i++ {
		bin, _ := codec.AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d,"s":"row %d"}`, i, i)))
		bad := i%7 == 3 || i >= 500 && i < 520
		if bad {
			bin = bin[:len(bin)-2] // the id decodes, the string is cut short
		}
		err := w.Append(dec, bin)
		var rowErr *parquet.RowError
		switch {
		case bad && !errors.As(err, &rowErr):
			t.Fatalf("row %d: a cut record gave %v, want a RowError", i, err)
		case !bad && err != nil:
			t.Fatalf("row %d: %v", i, err)
		case !bad:
			want = append(want, int64(i))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Refused rows do not cut batches short: 857 good rows in batches of 100 make 9.
	if got := w.Batches(); got != (len(want)+99)/100 {
		t.Errorf("%d batches for %d rows, want %d", got, len(want), (len(want)+99)/100)
	}
	r, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
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
	var got []int64
	for ci, chunk := range tbl.Column(0).Data().Chunks() {
		ids, strs := chunk.(*array.Int64), tbl.Column(1).Data().Chunk(ci).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			if strs.Value(i) != fmt.Sprintf("row %d", ids.Value(i)) {
				t.Fatalf("row with id %d has s %q: columns out of step", ids.Value(i), strs.Value(i))
			}
			got = append(got, ids.Value(i))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d rows read back, want %d: %v…", len(got), len(want), got[:min(len(got), 20)])
	}
}

// TestAmbiguousResolutionRefused: a writer's schema with one field matching a file field by its name and
// another by that field's alias would fill the column twice per row (and no record batch could be made of
// the builders); the decoder is refused instead.
func TestAmbiguousResolutionRefused(t *testing.T) {
	file, err := avro.Parse(`{"type":"record","name":"r","fields":[{"name":"id","type":"long","aliases":["old_id"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := parquet.ArrowSchema(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		writer string
		err    string
	}{
		{`{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"old_id","type":"long"}]}`, "fields id and old_id"},
		{`{"type":"record","name":"r","fields":[{"name":"old_id","type":"long"},{"name":"id","type":"int"}]}`, "fields old_id and id"},
		{`{"type":"record","name":"r","fields":[{"name":"old_id","type":"int"}]}`, ""},
	} {
		w, err := avro.Parse(tc.writer)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parquet.NewDecoder(w, file, cols)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.writer, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one naming %q", tc.writer, err, tc.err)
		}
	}
}
