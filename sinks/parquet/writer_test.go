package parquet_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/parquet"
)

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
