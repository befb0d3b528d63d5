package hdfs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/fs/fstest"
	"github.com/minipipe/minipipe/sinks/hdfs"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var n int

func fresh(t *testing.T, base string) *hdfs.FS {
	t.Helper()
	n++
	f, err := hdfs.Open(fmt.Sprintf("%s/fstest-%d-%d", base, time.Now().UnixNano(), n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.RemoveAll("."); f.Close() })
	return f
}

// TestConformance runs the suite every warehouse backend passes, against a real NameNode and DataNode.
func TestConformance(t *testing.T) {
	base := testkit.HDFS(t)
	fstest.Run(t, func(t *testing.T) fs.FS { return fresh(t, base) })
}

func TestOpenedByURL(t *testing.T) {
	base := testkit.HDFS(t)
	w, err := fs.Open(base + "/byurl")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if u := w.URI("t/dt=2026-11-25/x.parquet"); u != base+"/byurl/t/dt=2026-11-25/x.parquet" {
		t.Errorf("URI %q", u)
	}
	if _, err := w.ReadFile("../../etc/passwd"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("a path climbing out of the warehouse: %v", err)
	}
	if _, err := hdfs.Open("hdfs://127.0.0.1:1/x/../y"); err == nil {
		t.Error("a root with .. must be refused")
	}
}

// TestTornManifestRecord: a writer that dies while writing a manifest record leaves it torn under its
// lease. Settle takes the lease over; the manifest then reads the record as void and goes on after it.
func TestTornManifestRecord(t *testing.T) {
	base := testkit.HDFS(t)
	f := fresh(t, base)
	log, _, err := manifest.Load(f, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Append(&manifest.Record{Kind: manifest.Claim, Epoch: 1, Owner: "a"}); err != nil {
		t.Fatal(err)
	}
	// A record half-written by a client that is gone (its file closed short of the frame).
	w, err := f.Create("m/00000000000000000002.mf")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := manifest.Encode(&manifest.Record{Kind: manifest.Claim, Epoch: 2, Owner: "b"})
	_, _ = w.Write(good[:len(good)/2])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log2, st, err := manifest.Load(f, "m")
	if err != nil {
		t.Fatalf("load with a torn record: %v", err)
	}
	if st.Epoch != 1 || log2.Next() != 3 {
		t.Fatalf("epoch %d, next %d: the torn record must be void and skipped", st.Epoch, log2.Next())
	}
	// The next owner writes after it; a zombie trying the torn number is fenced.
	if err := log2.Append(&manifest.Record{Kind: manifest.Claim, Epoch: 2, Owner: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateExclusive("m/00000000000000000002.mf", good); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("recreating a torn record: %v", err)
	}
	_, st, err = manifest.Load(f, "m")
	if err != nil || st.Epoch != 2 {
		t.Fatalf("reload: epoch %d, %v", st.Epoch, err)
	}
}

// TestNameNodeOutage: with the NameNode down, calls fail with errors marked retriable, and the same client
// works again once it is back.
func TestNameNodeOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own HDFS")
	}
	h := testkit.StartHDFS(t)
	f, err := hdfs.Open(h.URL("/outage"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteFile("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := h.StopNameNode(); err != nil {
		t.Fatal(err)
	}
	err = f.CreateExclusive("b", []byte("2"))
	if err == nil || !fs.IsRetriable(err) {
		t.Fatalf("with the NameNode down: %v (retriable %v)", err, fs.IsRetriable(err))
	}
	if _, err := f.ReadFile("a"); !fs.IsRetriable(err) {
		t.Fatalf("read with the NameNode down: %v", err)
	}
	if err := h.StartNameNode(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err = f.CreateExclusive("b", []byte("2"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not recover: %v", err)
		}
		time.Sleep(time.Second)
	}
	if b, err := f.ReadFile("b"); err != nil || string(b) != "2" {
		t.Fatalf("after the outage: %q %v", b, err)
	}
	if !strings.HasPrefix(f.URI("x"), "hdfs://127.0.0.1:") {
		t.Errorf("URI %s", f.URI("x"))
	}
}
