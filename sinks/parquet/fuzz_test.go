package parquet_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// A writer schema and the file schema its rows are written into (the same, or a newer one: resolution).
var fuzzPairs = []struct{ writer, file string }{
	{`{"type":"record","name":"R","fields":[{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":"string"},{"name":"by","type":"bytes"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},{"name":"fx","type":{"type":"fixed","name":"F","size":3}}]}`, ""},
	{`{"type":"record","name":"R","fields":[{"name":"d1","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":2}},{"name":"d2","type":{"type":"fixed","name":"D","size":5,"logicalType":"decimal","precision":9,"scale":3}},{"name":"d3","type":{"type":"bytes","logicalType":"decimal","precision":50,"scale":4}},{"name":"d4","type":["null",{"type":"bytes","logicalType":"decimal","precision":4,"scale":0}]}]}`, ""},
	{`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}},{"name":"m","type":{"type":"map","values":["null","long"]}},{"name":"n","type":{"type":"array","items":{"type":"array","items":"int"}}}]}`, ""},
	{`{"type":"record","name":"R","fields":[{"name":"u","type":["null","string","long"]},{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"dt","type":{"type":"int","logicalType":"date"}},{"name":"t","type":{"type":"int","logicalType":"time-millis"}},{"name":"sub","type":{"type":"record","name":"S","fields":[{"name":"x","type":["null","double"]},{"name":"y","type":{"type":"map","values":"string"}}]}}]}`, ""},
	// Resolution: promotions, a new field with its default, a dropped field, a decimal read at a wider scale.
	{`{"type":"record","name":"R","fields":[{"name":"i","type":"int"},{"name":"f","type":"float"},{"name":"gone","type":"string"},{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}]}`,
		`{"type":"record","name":"R","fields":[{"name":"i","type":"long"},{"name":"f","type":"double"},{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":4}},{"name":"added","type":"string","default":"x"},{"name":"opt","type":["null","long"],"default":null}]}`},
	{`{"type":"record","name":"R","fields":[{"name":"v","type":"long"},{"name":"w","type":"string"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"v","type":["null","long","string"]},{"name":"w","type":["null","bytes"]}]}`},
}

// FuzzCheckedRowsWrite holds the promise that validation and the writer agree: a record the validator's
// check accepts (the Parquet writer's own reading of the schema) is accepted by avro.Validate (the REST
// edge's check) and the other way round, it is appended to a file, and the file closes and reads back with
// one row; a record it refuses is never half-appended. Resolution into a newer file schema is checked the
// same way. Checking never takes long, whatever the input.
func FuzzCheckedRowsWrite(f *testing.F) {
	type built struct {
		w, fs    *avro.Schema
		self     *parquet.Decoder // the writer schema read as itself: what validation checks
		resolved *parquet.Decoder
	}
	var cases []built
	for _, p := range fuzzPairs {
		w, err := avro.Parse(p.writer)
		if err != nil {
			f.Fatal(err)
		}
		fs := w
		if p.file != "" {
			if fs, err = avro.Parse(p.file); err != nil {
				f.Fatal(err)
			}
		}
		wcols, err := parquet.ArrowSchema(w, nil)
		if err != nil {
			f.Fatal(err)
		}
		self, err := parquet.NewDecoder(w, w, wcols)
		if err != nil {
			f.Fatal(err)
		}
		fcols, err := parquet.ArrowSchema(fs, nil)
		if err != nil {
			f.Fatal(err)
		}
		resolved, err := parquet.NewDecoder(w, fs, fcols)
		if err != nil {
			f.Fatal(err)
		}
		cases = append(cases, built{w: w, fs: fs, self: self, resolved: resolved})
	}
	v := func(x int64) []byte { return binary.AppendVarint(nil, x) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	str := func(s string) []byte { return append(v(int64(len(s))), s...) }
	f.Add(uint8(0), cat([]byte{1}, v(7), v(-9), []byte{0, 0, 0x80, 0x3f}, make([]byte, 8), str("hi"), str("\x00\xff"), v(2), []byte("abc")))
	f.Add(uint8(1), cat(str("\x01\x00"), []byte{0, 0, 0, 0x30, 0x39}, str("\xff"), v(1), str("\x27\x0f")))
	f.Add(uint8(1), cat(str("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), []byte{0, 0, 0, 0, 1}, str(""), v(0)))
	f.Add(uint8(1), cat(str("\x01"), []byte{0x7f, 0xff, 0xff, 0xff, 0xff}, str("\x01"), v(1), str("\x27\x10")))
	f.Add(uint8(2), cat(v(3), v(0), v(1), str("k"), v(0), v(0), v(1), v(2), v(4), v(6), v(0), v(0)))
	f.Add(uint8(2), cat(v(1<<24), v(1<<24), v(0), v(0), v(0)))
	f.Add(uint8(3), cat(v(1), str("x"), v(1_700_000_000_000_000), v(19000), v(1000), v(1), make([]byte, 8), v(1), str("a"), str("b"), v(0)))
	f.Add(uint8(4), cat(v(5), []byte{0, 0, 0x20, 0x41}, str("gone"), str("\x7f\xff\xff\xff\xff")))
	f.Add(uint8(5), cat(v(42), str("w")))
	f.Fuzz(func(t *testing.T, i uint8, payload []byte) {
		c := cases[int(i)%len(cases)]
		start := time.Now()
		cerr := c.self.Check(payload)
		verr := avro.Validate(c.w, payload)
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Fatalf("checking %d bytes took %v", len(payload), d)
		}
		if (cerr == nil) != (verr == nil) {
			t.Fatalf("the writer's check says %v, avro.Validate says %v, for %x", cerr, verr, payload)
		}
		for _, dec := range []*parquet.Decoder{c.self, c.resolved} {
			cols := dec.Columns()
			var buf bytes.Buffer
			w, err := parquet.NewWriter(&buf, cols, nil, parquet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Append(dec, payload)
			var rowErr *parquet.RowError
			switch {
			case err == nil:
			case errors.As(err, &rowErr):
				if dec == c.self && cerr == nil {
					t.Fatalf("checked, then refused by the writer: %v", err)
				}
				// The resolved reading may refuse what the writer's own accepts (a value that no longer
				// fits once rescaled): the row goes elsewhere, the file stays whole.
			default:
				t.Fatalf("append failed after the check: %v", err)
			}
			if cerr != nil && err == nil && dec == c.self {
				t.Fatalf("refused by the check (%v) but appended", cerr)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("closing: %v", err)
			}
			rows := int64(0)
			if err == nil {
				rows = 1
			}
			rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(t.Context())
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if tbl.NumRows() != rows {
				t.Fatalf("%d rows read back, want %d", tbl.NumRows(), rows)
			}
			tbl.Release()
		}
	})
}
