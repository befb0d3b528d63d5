package commit

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// partitionRows reads every row of a table partition as a reader listing its directory would: the ids, and
// the notes that are set. It fails on a file that does not read.
func partitionRows(t *testing.T, f fs.FS, dir string) (ids []int64, notes []string, files int) {
	t.Helper()
	entries, err := f.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir || strings.HasPrefix(e.Name, "_") || !strings.HasSuffix(e.Name, ".parquet") {
			continue
		}
		files++
		b, err := f.ReadFile(fs.Join(dir, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := file.NewParquetReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		tr := array.NewTableReader(tbl, 1024)
		for tr.Next() {
			rec := tr.RecordBatch()
			for i, fld := range rec.Schema().Fields() {
				switch fld.Name {
				case "id":
					col := rec.Column(i).(*array.Int64)
					for j := 0; j < col.Len(); j++ {
						ids = append(ids, col.Value(j))
					}
				case "note":
					col := rec.Column(i).(*array.String)
					for j := 0; j < col.Len(); j++ {
						if col.IsValid(j) {
							notes = append(notes, col.Value(j))
						}
					}
				}
			}
		}
		tr.Release()
		tbl.Release()
		r.Close()
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, notes, files
}

// partitionDir is the directory a table partition's files are in, by the manifest.
func partitionDir(p *partWriter, path string) string {
	if ks := p.st.Keys[envelope.Key("t", 1, path)]; ks != nil && ks.Dir != "" {
		return ks.Dir
	}
	return fs.Join(Location("t", 1), path)
}

func wantIDs(t *testing.T, got []int64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d rows, want %d: %v", len(got), n, got)
	}
	for i, id := range got {
		if id != int64(i) {
			t.Fatalf("rows %v: not each of 0…%d once", got, n-1)
		}
	}
}

func compactReq(request string) []byte {
	return envelope.EncodeCompact(envelope.Compact{Key: envelope.Key("t", 1, "dt=d1"), Request: request, MinFiles: 2, TargetBytes: 1 << 20})
}

func TestCompactPartition(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 2}, 64)
	off := int64(0)
	for i := int64(0); i < 10; i += 2 {
		h.send(h.p, off, h.batch("dt=d1", 0, 1, i, i+1))
		off++
	}
	h.send(h.p, off, h.batch("dt=d1", 0, 2, 10, 11)) // the newer schema, with a note column
	off++
	h.send(h.p, off, h.batch("dt=d2", 0, 1, 100, 101)) // another partition, left alone
	off++
	key := envelope.Key("t", 1, "dt=d1")
	before := *h.p.st.Keys[key]
	if before.Files != 6 || before.Rows != 12 {
		t.Fatalf("before: %+v", before)
	}
	h.send(h.p, off, compactReq("r1"))
	off++
	ks := h.p.st.Keys[key]
	if ks.Files != 1 || ks.Rows != 12 || ks.Dir != fmt.Sprintf("t/dt=d1/_cr1e%d", h.p.epoch) || ks.HWM["src:id:0"] != 11 {
		t.Fatalf("after the compaction: %+v", ks)
	}
	if lc := ks.LastCompaction; lc == nil || lc.Replaced != 6 || lc.AppliedAt.IsZero() || lc.From != "t/dt=d1" || lc.Request != "r1" {
		t.Fatalf("last compaction: %+v", ks.LastCompaction)
	}
	dir1 := ks.Dir
	ids, _, files := partitionRows(t, h.fs, dir1)
	wantIDs(t, ids, 12)
	if files != 1 {
		t.Fatalf("%d files in the compacted directory", files)
	}
	// The replaced files stay, for queries that started before (minipipe compact removes them after its grace).
	if ids, _, files := partitionRows(t, h.fs, "t/dt=d1"); files != 6 || len(ids) != 12 {
		t.Fatalf("the replaced files: %d files, %d rows", files, len(ids))
	}
	// The next commit of the partition goes to its new directory; rows already committed are still dropped.
	h.send(h.p, off, h.batch("dt=d1", 0, 2, 10, 11, 12, 13))
	off++
	ids, _, files = partitionRows(t, h.fs, ks.Dir)
	wantIDs(t, ids, 14)
	if files != 2 || h.p.st.Keys[key].Files != 2 {
		t.Fatalf("%d files in the compacted directory, the manifest says %d", files, h.p.st.Keys[key].Files)
	}
	// The request delivered again does nothing; a second one compacts the compacted directory.
	h.send(h.p, off, compactReq("r1"))
	off++
	if h.p.st.Keys[key].Dir != dir1 {
		t.Fatal("a redelivered request compacted again")
	}
	h.send(h.p, off, compactReq("r2"))
	ks2 := h.p.st.Keys[key]
	if ks2.Dir == dir1 || ks2.Files != 1 || ks2.LastCompaction.From != dir1 {
		t.Fatalf("second compaction: %+v", ks2)
	}
	ids, _, _ = partitionRows(t, h.fs, ks2.Dir)
	wantIDs(t, ids, 14)
	if d2 := h.p.st.Keys[envelope.Key("t", 1, "dt=d2")]; d2.Dir != "" || d2.Files != 1 {
		t.Fatalf("the other partition changed: %+v", d2)
	}
}

func TestCompactionLeavesAloneWhatItCannotDo(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 2}, 64)
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0, 1))
	key := envelope.Key("t", 1, "dt=d1")
	h.send(h.p, 1, compactReq("one")) // a single file
	if ks := h.p.st.Keys[key]; ks.Dir != "" || ks.LastCompaction != nil {
		t.Fatalf("a partition of one file was compacted: %+v", ks)
	}
	h.send(h.p, 2, h.batch("dt=d1", 0, 1, 2, 3))
	// A file put there by hand: the directory no longer holds exactly the committed files.
	if err := h.fs.WriteFile("t/dt=d1/stray.parquet", []byte("PAR1")); err != nil {
		t.Fatal(err)
	}
	h.send(h.p, 3, compactReq("stray"))
	if ks := h.p.st.Keys[key]; ks.Dir != "" || ks.LastCompaction != nil {
		t.Fatalf("a directory with a stray file was compacted: %+v", ks)
	}
	if err := h.fs.Remove("t/dt=d1/stray.parquet"); err != nil {
		t.Fatal(err)
	}
	// Invalid request names never become directories.
	h.send(h.p, 4, envelope.EncodeCompact(envelope.Compact{Key: key, Request: "../x", MinFiles: 2, TargetBytes: 1 << 20}))
	// Files too big to share a target size stay as they are.
	h.send(h.p, 5, envelope.EncodeCompact(envelope.Compact{Key: key, Request: "tiny", MinFiles: 2, TargetBytes: 1}))
	if ks := h.p.st.Keys[key]; ks.Dir != "" || ks.LastCompaction != nil || h.p.fatal != nil {
		t.Fatalf("compacted anyway: %+v %v", ks, h.p.fatal)
	}
	h.send(h.p, 6, compactReq("ok"))
	if ks := h.p.st.Keys[key]; ks.Files != 1 || ks.Rows != 4 {
		t.Fatalf("not compacted: %+v", ks)
	}
}

// TestCompactionCrashAtEveryStep stops the owner at every step of a compaction (a panic where a crash test
// kills the process) and lets a new owner take the partition, with the request delivered again (it was not
// acknowledged): every row is in the partition's directory once, whichever step it was.
func TestCompactionCrashAtEveryStep(t *testing.T) {
	for _, step := range []string{"compact.staged", "compact.intent", "compact.published", "compact.committed"} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t, layout.Rotation{MaxRecords: 2}, 64)
			for i := int64(0); i < 8; i += 2 {
				h.send(h.p, i, h.batch("dt=d1", 0, 1, i, i+1))
			}
			h.send(h.p, 8, h.batch("dt=d1", 0, 1, 8)) // an open file: its rows are redone by the next owner
			h.c.cfg.Failpoint = func(s string) {
				if s == step {
					panic("crash at " + s)
				}
			}
			func() {
				defer func() {
					if r := recover(); r == nil {
						t.Fatal("the failpoint was not reached")
					}
				}()
				h.send(h.p, 9, compactReq("r1"))
			}()
			h.c.cfg.Failpoint = func(string) {}
			p2 := h.newPart()
			h.send(p2, 8, h.batch("dt=d1", 0, 1, 8, 9)) // redelivered from the committed offset
			h.send(p2, 9, compactReq("r1"))
			h.send(p2, 10, h.batch("dt=d1", 0, 1, 10, 11))
			ks := p2.st.Keys[envelope.Key("t", 1, "dt=d1")]
			if ks.LastCompaction == nil || ks.Rows != 12 {
				t.Fatalf("after the new owner: %+v", ks)
			}
			ids, _, files := partitionRows(t, h.fs, partitionDir(p2, "dt=d1"))
			wantIDs(t, ids, 12)
			if int64(files) != ks.Files {
				t.Fatalf("%d files in the directory, the manifest says %d", files, ks.Files)
			}
			// The manifest read from the warehouse agrees.
			_, st, err := manifest.Load(h.fs, ManifestDir("rows", 0))
			if err != nil {
				t.Fatal(err)
			}
			if k := st.Keys[envelope.Key("t", 1, "dt=d1")]; k.Rows != 12 || k.Files != ks.Files || k.Dir != ks.Dir {
				t.Fatalf("manifest: %+v", k)
			}
		})
	}
}

// A group of one file is copied as it is (no file is read whole into memory for nothing), and a request
// that killed two owners is skipped by the third.
func TestCompactionCopiesLoneFilesAndGivesUpAfterTwoCrashes(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 2}, 64)
	for i := int64(0); i < 10; i += 2 {
		h.send(h.p, i, h.batch("dt=d1", 0, 1, i, i+1))
	}
	key := envelope.Key("t", 1, "dt=d1")
	entries, err := h.fs.ReadDir("t/dt=d1")
	if err != nil || len(entries) != 5 {
		t.Fatalf("%d files: %v", len(entries), err)
	}
	// Two files fit the target together: groups of 2, 2 and 1.
	target := entries[0].Size + entries[1].Size + 1
	h.send(h.p, 10, envelope.EncodeCompact(envelope.Compact{Key: key, Request: "pairs", MinFiles: 2, TargetBytes: target}))
	ks := h.p.st.Keys[key]
	if ks.Files != 3 || ks.Rows != 10 {
		t.Fatalf("after compacting 5 files two by two: %+v", ks)
	}
	ids, _, files := partitionRows(t, h.fs, ks.Dir)
	wantIDs(t, ids, 10)
	if files != 3 {
		t.Fatalf("%d files", files)
	}
	// A request whose attempts were both started and never finished (their owners died) is skipped.
	if err := h.fs.MkdirAll("_minipipe/compactions/doomed"); err != nil {
		t.Fatal(err)
	}
	if err := h.fs.WriteFile(attemptsPath("doomed", key), []byte("2\n")); err != nil {
		t.Fatal(err)
	}
	h.send(h.p, 11, compactReq("doomed"))
	if ks := h.p.st.Keys[key]; ks.Compacted("doomed") || ks.Files != 3 {
		t.Fatalf("a request that failed twice was tried again: %+v", ks)
	}
	// The manifest of a compacted partition is written in the format older minipipe refuses.
	recs, err := h.fs.ReadDir(ManifestDir("rows", 0))
	if err != nil {
		t.Fatal(err)
	}
	v2 := 0
	for _, r := range recs {
		b, err := h.fs.ReadFile(fs.Join(ManifestDir("rows", 0), r.Name))
		if err == nil && len(b) > 5 && string(b[:4]) == "MPMF" && b[4] == 2 {
			v2++
		}
	}
	if v2 == 0 {
		t.Fatal("no manifest record of the compaction is framed as version 2")
	}
}
