package manifest

import (
	"errors"
	"testing"

	"github.com/minipipe/minipipe/sinks/fs"
)

func newFS(t *testing.T) fs.FS {
	l, err := fs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func file(key, src string, first, last int64) File {
	return File{Table: "t", Key: key, Path: "dt=x", Final: key + ".parquet", Rows: last - first + 1,
		Sources: []SourceRange{{Source: src, First: first, Last: last, Count: last - first + 1}}}
}

func TestFrameRoundTripAndCorruption(t *testing.T) {
	r := &Record{Kind: Intent, Epoch: 3, Files: []File{file("k", "s:0", 0, 9)}}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil || got.Kind != Intent || got.Epoch != 3 || got.Files[0].Sources[0].Last != 9 {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := Decode(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipping byte %d went unnoticed: %v", i, err)
		}
	}
	if _, err := Decode(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatal("a torn record went unnoticed")
	}
}

func TestLogRecoveryAndFencing(t *testing.T) {
	f := newFS(t)
	l, st, err := Load(f, "m/p0")
	if err != nil || l.Next() != 1 || len(st.Keys) != 0 {
		t.Fatalf("empty: %v %v", l, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Append(&Record{Kind: Claim, Epoch: 1}))
	in := &Record{Kind: Intent, Epoch: 1, Files: []File{file("a", "s:0", 0, 9), file("b", "s:0", 5, 12)}}
	must(l.Append(in))
	must(l.Append(&Record{Kind: Committed, Epoch: 1, Ref: in.Seq}))
	in2 := &Record{Kind: Intent, Epoch: 1, Files: []File{file("a", "s:0", 10, 20)}}
	must(l.Append(in2))

	// A second owner loads, sees the pending intent, and claims: the first one is fenced.
	l2, st2, err := Load(f, "m/p0")
	must(err)
	if st2.HWM("a", "s:0") != 9 || st2.HWM("b", "s:0") != 12 || st2.HWM("a", "s:1") != -1 || len(st2.Pending) != 1 {
		t.Fatalf("state %+v", st2)
	}
	must(l2.Append(&Record{Kind: Claim, Epoch: 2}))
	if err := l.Append(&Record{Kind: Committed, Epoch: 1, Ref: in2.Seq}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old owner was not fenced: %v", err)
	}
	must(l2.Append(&Record{Kind: Committed, Epoch: 2, Ref: in2.Seq}))
	_, st3, err := Load(f, "m/p0")
	must(err)
	if st3.HWM("a", "s:0") != 20 || st3.Keys["a"].Files != 2 || st3.Keys["a"].Rows != 21 || len(st3.Pending) != 0 || st3.Epoch != 2 {
		t.Fatalf("state %+v", st3.Keys["a"])
	}
}

func TestCompaction(t *testing.T) {
	f := newFS(t)
	l, st, _ := Load(f, "m")
	for i := int64(0); i < 50; i++ {
		in := &Record{Kind: Intent, Files: []File{file("k", "s:0", i*10, i*10+9)}}
		if err := l.Append(in); err != nil {
			t.Fatal(err)
		}
		st.Apply(in)
		c := &Record{Kind: Committed, Ref: in.Seq}
		if err := l.Append(c); err != nil {
			t.Fatal(err)
		}
		st.Apply(c)
		if i%10 == 9 {
			if err := l.Compact(st, 1, "me"); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, _ := f.ReadDir("m")
	if len(entries) > 25 {
		t.Fatalf("compaction kept %d records", len(entries))
	}
	_, st2, err := Load(f, "m")
	if err != nil || st2.HWM("k", "s:0") != 499 || st2.Keys["k"].Files != 50 || st2.Keys["k"].Rows != 500 {
		t.Fatalf("after compaction: %+v %v", st2.Keys["k"], err)
	}
}

// FuzzDecode: a record file of any content either decodes to a record that encodes back to the same bytes
// or is reported corrupt; it never panics.
func FuzzDecode(f *testing.F) {
	for _, r := range []*Record{
		{Kind: Claim, Epoch: 1, Owner: "a"},
		{Kind: Intent, Epoch: 2, Files: []File{file("k", "s:0", 0, 9)}},
		{Kind: Committed, Ref: 4},
		{Kind: Checkpoint, State: &State{Epoch: 3, Keys: map[string]*KeyState{"k": {Table: "t", HWM: map[string]int64{"s:0": 9}}}}},
	} {
		b, err := Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("MPMF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		again, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
