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
