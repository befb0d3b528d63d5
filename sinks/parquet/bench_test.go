package parquet_test

import (
	"testing"

	"github.com/minipipe/minipipe/internal/benchdata"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// wideRecords makes n Avro records of make bench's wide shape (benchdata.WideSchema: 30 fields, about
// 1.1 KB), their decoder and their total size.
func wideRecords(b *testing.B, n int) (*parquet.Decoder, [][]byte, int) {
	_, dec, codec := compileSchema(b, benchdata.WideSchema)
	recs := make([][]byte, n)
	size := 0
	for i := range recs {
		var err error
		if recs[i], err = codec.AppendBinaryFromJSON(nil, []byte(benchdata.WideDatum(i))); err != nil {
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
