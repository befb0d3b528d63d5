package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

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
	// An upload to a key the final key is a prefix of is another file's: it stays.
	other, err := f.Create("tbl/a.parquet2")
	if err != nil {
		t.Fatal(err)
	}
	if ups, err := f.Uploads("tbl/a.parquet"); err != nil || len(ups) != 2 {
		t.Fatalf("uploads before: %v %v", ups, err)
	}
	if err := f.WriteFile("_staging/p0/a.parquet", []byte("whole file")); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("_staging/p0/a.parquet", "tbl/a.parquet"); err != nil {
		t.Fatal(err)
	}
	if ups, err := f.Uploads("tbl/a.parquet"); err != nil || len(ups) != 1 || !strings.HasSuffix(ups[0], "/tbl/a.parquet2") {
		t.Fatalf("uploads left under the final key after the rename: %v %v (want only tbl/a.parquet2's)", ups, err)
	}
	if err := other.Close(); err != nil {
		t.Fatalf("the other file's upload: %v", err)
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

// TestRenameLosingTheRace: a rename whose upload the winner of a race to the same key aborted is told ErrExist
// (as a refused conditional completion says it), never ErrNotExist, which means its source is gone.
func TestRenameLosingTheRace(t *testing.T) {
	f := open(t)
	for _, d := range []string{"_staging/p0", "tbl"} {
		if err := f.MkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
	loser, err := f.Create("tbl/c.parquet") // the losing rename's upload, on the final key
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("_staging/p0/c.parquet", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("_staging/p0/c.parquet", "tbl/c.parquet"); err != nil { // the winner: aborts the loser's upload
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"NoSuchUpload", &smithy.GenericAPIError{Code: "NoSuchUpload", Message: "aborted"}},
		{"a 500 for an aborted upload", statusError(500)},
		{"NoSuchKey", &smithy.GenericAPIError{Code: "NoSuchKey"}},
	} {
		if err := f.RenameFailed("_staging/p0/c.parquet", "tbl/c.parquet", loser, tc.err); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s after losing the race: %v, want ErrExist", tc.name, err)
		}
	}
	// A missing source while the rename's own upload lives is ErrNotExist.
	alive, err := f.Create("tbl/d.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Abandon(alive)
	if err := f.RenameFailed("_staging/p0/d.parquet", "tbl/d.parquet", alive, &smithy.GenericAPIError{Code: "NoSuchKey"}); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
		t.Errorf("a missing source: %v, want ErrNotExist", err)
	}
}

type statusError int

func (e statusError) Error() string       { return fmt.Sprintf("HTTP %d", int(e)) }
func (e statusError) HTTPStatusCode() int { return int(e) }
