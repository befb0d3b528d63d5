package parquet_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// wideRecords makes n Avro records of make bench's wide shape (30 fields, about 1.1 KB: 10 strings of ~100
// characters from a vocabulary, 10 longs, 5 doubles, 4 booleans, a timestamp-millis).
func wideRecords(b *testing.B, n int) (*parquet.Decoder, [][]byte, int) {
	var f []string
	for i := 0; i < 10; i++ {
		f = append(f, fmt.Sprintf(`{"name":"s%d","type":"string"}`, i), fmt.Sprintf(`{"name":"l%d","type":"long"}`, i))
	}
	for i := 0; i < 5; i++ {
		f = append(f, fmt.Sprintf(`{"name":"d%d","type":"double"}`, i))
	}
	for i := 0; i < 4; i++ {
		f = append(f, fmt.Sprintf(`{"name":"b%d","type":"boolean"}`, i))
	}
	f = append(f, `{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}`)
	s, err := avro.Parse(`{"type":"record","name":"Wide","fields":[` + strings.Join(f, ",") + `]}`)
	if err != nil {
		b.Fatal(err)
	}
	cols, err := parquet.ArrowSchema(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := parquet.NewDecoder(s, s, cols)
	if err != nil {
		b.Fatal(err)
	}
	codec, err := avro.NewCodec(s)
	if err != nil {
		b.Fatal(err)
	}
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	recs := make([][]byte, n)
	size := 0
	for i := range recs {
		var js strings.Builder
		js.WriteByte('{')
		for j := 0; j < 10; j++ {
			var v strings.Builder
			for k := 0; v.Len() < 100; k++ {
				v.WriteString(words[(i*7+j*3+k*k)%len(words)])
				v.WriteByte('-')
				v.WriteString(strconv.Itoa((i + k*j) % 997))
				v.WriteByte(' ')
			}
			fmt.Fprintf(&js, `"s%d":%q,"l%d":%d,`, j, v.String(), j, int64(i)*int64(j+1)*7919)
		}
		for j := 0; j < 5; j++ {
			fmt.Fprintf(&js, `"d%d":%g,`, j, float64(i%100000)/float64(j+3))
		}
		for j := 0; j < 4; j++ {
			fmt.Fprintf(&js, `"b%d":%t,`, j, (i>>j)&1 == 1)
		}
		fmt.Fprintf(&js, `"ts":%d}`, 1793534400000+int64(i))
		recs[i], err = codec.AppendBinaryFromJSON(nil, []byte(js.String()))
		if err != nil {
			b.Fatal(err)
		}
		size += len(recs[i])
	}
	return dec, recs, size
}

// countBytes counts what is written to it.
type countBytes int64

func (c *countBytes) Write(b []byte) (int, error) { *c += countBytes(len(b)); return len(b), nil }

// BenchmarkWriterWide: wide records through Writer into zstd Parquet, files of 20,000 rows (a second of one
// source partition in make bench), as the commit stage writes them (one Encodings for the table). MB/s is
// of Avro input.
func BenchmarkWriterWide(b *testing.B) {
	const perFile = 20000
	dec, recs, size := wideRecords(b, perFile)
	for _, c := range []struct {
		name  string
		level int
		learn bool
	}{{"zstd-default", 0, true}, {"zstd3", 3, true}, {"zstd3-nolearn", 3, false}} {
		b.Run(c.name, func(b *testing.B) {
			enc := parquet.NewEncodings()
			if !c.learn {
				enc = nil
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var out countBytes
			for i := 0; i < b.N; i++ {
				w, err := parquet.NewWriter(&out, dec.Columns(), nil, parquet.Options{Compression: "zstd", CompressionLevel: c.level, Encodings: enc, Table: "wide"})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range recs {
					if err := w.Append(dec, r); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out)/float64(b.N*perFile), "parquet-B/row")
		})
	}
}
