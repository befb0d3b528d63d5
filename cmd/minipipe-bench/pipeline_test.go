package main

import (
	"testing"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/benchdata"
)

// The wide record is what the issue names: 30 fields, about 1.1 KB of Avro.
func TestWideRecord(t *testing.T) {
	s, err := avro.Parse(benchdata.WideSchema)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := avro.NewCodec(s)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for i := 0; i < 100; i++ {
		b, err := codec.AppendBinaryFromJSON(nil, []byte(benchdata.WideDatum(i)))
		if err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, benchdata.WideDatum(i))
		}
		total += len(b)
	}
	if avg := total / 100; avg < 1000 || avg > 1300 {
		t.Fatalf("%d bytes on average", avg)
	}
	if n := len(s.Fields); n != 30 {
		t.Fatalf("%d fields", n)
	}
}
