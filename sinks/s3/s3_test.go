package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/fs/fstest"
	"github.com/minipipe/minipipe/sinks/s3"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func open(t *testing.T) *s3.FS {
	t.Helper()
	endpoint := testkit.S3(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t-" + hex.EncodeToString(b)
	f, err := s3.Open(context.Background(), "s3://"+testkit.S3Bucket+"/"+prefix, s3.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if root, err := s3.Open(context.Background(), "s3://"+testkit.S3Bucket, s3.Config{Endpoint: endpoint}); err == nil {
			_ = root.RemoveAll(prefix)
		}
	})
	return f
}

// TestConformance: the shared fs suite against a real S3-compatible server (moto, make test's).
func TestConformance(t *testing.T) {
	fstest.Run(t, func(t *testing.T) fs.FS { return open(t) })
}

// TestConditionalPutFencesAZombie: two owners racing for one manifest record: S3's If-None-Match lets exactly one
// write it; the other is told ErrExist and the record holds the winner's bytes.
func TestConditionalPutFencesAZombie(t *testing.T) {
	f := open(t)
	name := "_minipipe/manifests/rows/p0/00000000000000000042.rec"
	if err := f.CreateExclusive(name, []byte("new owner's epoch")); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateExclusive(name, []byte("zombie's intent")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("the zombie's record: %v, want ErrExist", err)
	}
	if b, err := f.ReadFile(name); err != nil || string(b) != "new owner's epoch" {
		t.Fatalf("the record holds %q (%v)", b, err)
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Fatal("no credentials reached the AWS chain")
	}
}

// TestUploadInParts: a file larger than a part goes up in several (the last one short), reads back whole,
// is invisible until closed, and renames (a part copy) intact.
func TestUploadInParts(t *testing.T) {
	f := open(t)
	if err := f.MkdirAll("_staging/p0"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 20<<20+12345)
	_, _ = rand.Read(data)
	w, err := f.Create("_staging/p0/big.parquet")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := w.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := fs.Exists(f, "_staging/p0/big.parquet"); ok {
		t.Fatal("visible before Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("_staging/p0/big.parquet", "tbl/dt=2026-11-29/big.parquet"); err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFile("tbl/dt=2026-11-29/big.parquet")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (want %d), equal %v, %v", len(got), len(data), bytes.Equal(got, data), err)
	}
	if uri := f.URI("tbl"); !strings.HasPrefix(uri, "s3a://"+testkit.S3Bucket+"/t-") {
		t.Fatalf("URI %s", uri)
	}
}

// TestOpenProbes: opening a warehouse probes the server's conditional put (moto answers it), and the probe
// leaves nothing behind.
func TestOpenProbes(t *testing.T) {
	f := open(t)
	entries, err := f.ReadDir("_minipipe/probe")
	if err == nil && len(entries) > 0 {
		t.Fatalf("the probe left %v", entries)
	}
}

// TestCrashedRenameLeavesNoUpload: a rename that died between starting its upload on the final key and completing
// it leaves an upload there; the rename recovery makes again aborts it, and an abandoned file publishes nothing.
func TestCrashedRenameLeavesNoUpload(t *testing.T) {
	f := open(t)
	if err := f.MkdirAll("_staging/p0"); err != nil {
		t.Fatal(err)
	}
	if err := f.MkdirAll("tbl"); err != nil {
		t.Fatal(err)
	}
	// The crashed rename's upload on the final key (a Create there starts one the same way).
	dead, err := f.Create("tbl/a.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Write([]byte("torn")); err != nil {
		t.Fatal(err)
	}
	if ups, err := f.Uploads("tbl/a.parquet"); err != nil || len(ups) != 1 {
		t.Fatalf("uploads before: %v %v", ups, err)
	}
	if err := f.WriteFile("_staging/p0/a.parquet", []byte("whole file")); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("_staging/p0/a.parquet", "tbl/a.parquet"); err != nil {
		t.Fatal(err)
	}
	if ups, err := f.Uploads("tbl/a.parquet"); err != nil || len(ups) != 0 {
		t.Fatalf("uploads left on the final key after the rename: %v %v", ups, err)
	}
	if b, err := f.ReadFile("tbl/a.parquet"); err != nil || string(b) != "whole file" {
		t.Fatalf("the renamed file holds %q (%v)", b, err)
	}
	// The dead writer's file can no longer be completed over it.
	if err := dead.Close(); err == nil {
		t.Fatal("the crashed rename's upload completed after its abort")
	}

	// Abandon aborts: nothing under the name, no upload left.
	w, err := f.Create("_staging/p0/b.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half a file")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Abandon(w); err != nil {
		t.Fatal(err)
	}
	if ok, err := fs.Exists(f, "_staging/p0/b.parquet"); ok || err != nil {
		t.Fatalf("an abandoned file exists: %v %v", ok, err)
	}
	if ups, err := f.Uploads("_staging/p0/b.parquet"); err != nil || len(ups) != 0 {
		t.Fatalf("uploads left after Abandon: %v %v", ups, err)
	}
}
