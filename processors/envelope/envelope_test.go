package envelope

import (
	"reflect"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	b := &Batch{Table: "connect_test", Generation: 2, Path: "dt=2026-11-25", Partitions: [][2]string{{"dt", "2026-11-25"}},
		Source: Source{Topic: "connect_test", TopicID: "abc", Partition: 3}, Prev: 97,
		Rows: []Row{{Offset: 100, Timestamp: 1764072000000, SchemaID: 7, Payload: []byte{1, 2}}, {Offset: 105, Timestamp: 1764072000001, SchemaID: 8, Payload: nil}}}
	got, err := DecodeBatch(EncodeBatch(b))
	if err != nil {
		t.Fatal(err)
	}
	got.Rows[1].Payload = nil
	b.Rows[1].Payload = nil
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("got %+v\nwant %+v", got, b)
	}
	enc := EncodeBatch(b)
	for i := range enc {
		if _, err := DecodeBatch(enc[:i]); err == nil {
			t.Fatalf("a batch cut at %d decoded", i)
		}
	}
	s := Seal{Key: Key("t", 1, "dt=x"), FileID: FileID(b.Source, 100)}
	gs, err := DecodeSeal(EncodeSeal(s))
	if err != nil || gs != s {
		t.Fatalf("seal %+v %v", gs, err)
	}
	table, gen, path, err := SplitKey(s.Key)
	if err != nil || table != "t" || gen != 1 || path != "dt=x" {
		t.Fatalf("SplitKey: %s %d %s %v", table, gen, path, err)
	}
	if _, _, _, err := SplitKey("nope"); err == nil {
		t.Fatal("bad key accepted")
	}
}

// Seals ride on batches: after a batch's last row, or alone (a batch without rows) at a given offset.
func TestBatchSeal(t *testing.T) {
	src := Source{Topic: "t", TopicID: "id", Partition: 1}
	for _, b := range []*Batch{
		{Table: "t", Generation: 1, Path: "dt=x", Source: src, Prev: 4, Rows: []Row{{Offset: 5}, {Offset: 9}}, Seal: true, SealAt: 9},
		{Table: "t", Generation: 1, Path: "dt=x", Source: src, Prev: 9, Seal: true, SealAt: 9},
		{Table: "t", Generation: 1, Path: "dt=x", Source: src, Prev: -1, Seal: true, SealAt: 0},
	} {
		got, err := DecodeBatch(EncodeBatch(b))
		if err != nil {
			t.Fatal(err)
		}
		if got.Seal != b.Seal || got.SealAt != b.SealAt || got.Prev != b.Prev || len(got.Rows) != len(b.Rows) {
			t.Fatalf("got %+v\nwant %+v", got, b)
		}
	}
	// A batch without rows and without a seal is nothing: refused.
	if _, err := DecodeBatch(EncodeBatch(&Batch{Table: "t", Source: src, Prev: 3})); err == nil {
		t.Fatal("an empty batch without a seal decoded")
	}
}

// A batch written by an earlier version (no Prev) still decodes, with Prev -1.
func TestBatchVersion1(t *testing.T) {
	v1 := []byte{'M', 1, KindRows, 1, 't', 1, 3, 'd', '=', '1', 0, 1, 't', 0, 2, 1, 20, 0, 2, 0}
	b, err := DecodeBatch(v1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Prev != -1 || len(b.Rows) != 1 || b.Rows[0].Offset != 10 || b.Source.Partition != 1 {
		t.Fatalf("%+v", b)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(EncodeBatch(&Batch{Table: "t", Path: "dt=x", Source: Source{Topic: "t"}, Rows: []Row{{Offset: 1, Payload: []byte("ab")}}}))
	f.Add(EncodeSeal(Seal{Key: "t@1/", FileID: "t+0+1"}))
	f.Add(EncodeBatch(&Batch{Table: "t", Path: "dt=x", Source: Source{Topic: "t"}, Rows: []Row{{Offset: 1, Payload: []byte("ab")}}, Seal: true}))
	f.Add(EncodeBatch(&Batch{Table: "t", Path: "dt=x", Source: Source{Topic: "t"}, Prev: 7, Seal: true, SealAt: 7}))
	f.Add([]byte{'M', 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(EncodeWatermark(Watermark{Table: "t", Generation: 1, Source: Source{Topic: "t", Partition: 2}, Partitions: 4, Through: 9, EventTime: 1e12, Arrived: 1e12}))
	f.Add(EncodeCompact(Compact{Key: "t@1/dt=2026-11-25", Request: "r1", MinFiles: 2, TargetBytes: 128 << 20}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := DecodeCompact(b); err == nil {
			if again, err := DecodeCompact(EncodeCompact(c)); err != nil || again != c {
				t.Fatalf("re-encoded compaction request differs: %+v %+v %v", c, again, err)
			}
		}
		if batch, err := DecodeBatch(b); err == nil {
			again, err := DecodeBatch(EncodeBatch(batch))
			if err != nil || len(again.Rows) != len(batch.Rows) || again.Seal != batch.Seal || again.SealAt != batch.SealAt {
				t.Fatalf("re-encoded batch differs: %v", err)
			}
		}
		_, _ = DecodeSeal(b)
		if m, err := DecodeWatermark(b); err == nil {
			if again, err := DecodeWatermark(EncodeWatermark(m)); err != nil || again != m {
				t.Fatalf("re-encoded watermark differs: %+v %+v %v", m, again, err)
			}
		}
	})
}
