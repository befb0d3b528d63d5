// Package fstest is the conformance suite every warehouse filesystem backend must pass: the guarantees the
// commit protocol relies on, checked against the backend itself.
package fstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"testing"

	"github.com/minipipe/minipipe/sinks/fs"
)

// Run runs the suite; newFS returns a fresh, empty filesystem for each subtest.
func Run(t *testing.T, newFS func(t *testing.T) fs.FS) {
	t.Run("create and read", func(t *testing.T) {
		f := newFS(t)
		if _, err := f.Create("a/b/c.parquet"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Create in a missing directory: %v (it must not make it)", err)
		}
		if err := f.MkdirAll("a/b"); err != nil {
			t.Fatal(err)
		}
		w, err := f.Create("a/b/c.parquet")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("hello ")); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("world")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := f.ReadFile("a/b/c.parquet")
		if err != nil || string(got) != "hello world" {
			t.Fatalf("read back %q, %v", got, err)
		}
		r, err := f.Open("a/b/c.parquet")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != "hello world" {
			t.Fatalf("open read %q", b)
		}
		st, err := f.Stat("a/b/c.parquet")
		if err != nil || st.Size != 11 || st.IsDir {
			t.Fatalf("stat %+v %v", st, err)
		}
		if st, err := f.Stat("a/b"); err != nil || !st.IsDir {
			t.Fatalf("stat dir %+v %v", st, err)
		}
		// Create replaces.
		w, _ = f.Create("a/b/c.parquet")
		_, _ = w.Write([]byte("x"))
		_ = w.Close()
		if got, _ := f.ReadFile("a/b/c.parquet"); string(got) != "x" {
			t.Fatalf("create must replace: %q", got)
		}
	})

	t.Run("missing files", func(t *testing.T) {
		f := newFS(t)
		if _, err := f.ReadFile("nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile missing: %v", err)
		}
		if _, err := f.Stat("nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat missing: %v", err)
		}
		if _, err := f.ReadDir("nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadDir missing: %v", err)
		}
		if err := f.Remove("nope"); err != nil {
			t.Errorf("Remove missing: %v", err)
		}
		if err := f.RemoveAll("nope/deeper"); err != nil {
			t.Errorf("RemoveAll missing: %v", err)
		}
		if ok, err := fs.Exists(f, "nope"); ok || err != nil {
			t.Errorf("Exists missing: %v %v", ok, err)
		}
	})

	t.Run("create exclusive fences", func(t *testing.T) {
		f := newFS(t)
		if err := f.CreateExclusive("m/0001", []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := f.CreateExclusive("m/0001", []byte("second")); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second exclusive create: %v", err)
		}
		if got, _ := f.ReadFile("m/0001"); string(got) != "first" {
			t.Fatalf("the loser changed the file: %q", got)
		}
		// Racing writers: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := f.CreateExclusive("m/0002", []byte(fmt.Sprint(i))); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, fs.ErrExist) {
					t.Errorf("racer %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d racers won", wins)
		}
		// No temporary files are left behind in the directory.
		es, err := f.ReadDir("m")
		if err != nil || len(es) != 2 {
			t.Fatalf("directory holds %v (%v)", es, err)
		}
	})

	t.Run("rename never replaces", func(t *testing.T) {
		f := newFS(t)
		put := func(name, data string) {
			if err := f.MkdirAll(path.Dir(name)); err != nil {
				t.Fatal(err)
			}
			w, err := f.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write([]byte(data))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		put("_staging/x", "staged")
		if err := f.Rename("_staging/x", "tbl/dt=2026-11-25/x.parquet"); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.ReadFile("tbl/dt=2026-11-25/x.parquet"); string(got) != "staged" {
			t.Fatalf("renamed content %q", got)
		}
		if ok, _ := fs.Exists(f, "_staging/x"); ok {
			t.Fatal("the source is still there")
		}
		put("_staging/y", "other")
		if err := f.Rename("_staging/y", "tbl/dt=2026-11-25/x.parquet"); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("rename onto an existing file: %v", err)
		}
		if got, _ := f.ReadFile("tbl/dt=2026-11-25/x.parquet"); string(got) != "staged" {
			t.Fatalf("rename replaced the target: %q", got)
		}
		if err := f.Rename("_staging/missing", "tbl/z"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("rename of a missing file: %v", err)
		}
	})

	t.Run("a removed directory fences its writer", func(t *testing.T) {
		// The commit protocol's zombie fence: the new owner of a partition removes the old owner's staging
		// directory; the old owner can then neither create a file there nor publish one it was writing.
		f := newFS(t)
		if err := f.MkdirAll("_staging/p0/3-abc"); err != nil {
			t.Fatal(err)
		}
		w, err := f.Create("_staging/p0/3-abc/x.parquet")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("zombie data")); err != nil {
			t.Fatal(err)
		}
		if err := f.RemoveAll("_staging/p0/3-abc"); err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(" more"))
		_ = w.Close() // may fail (HDFS) or not (a local file lives on unlinked): either way it is gone
		if err := f.Rename("_staging/p0/3-abc/x.parquet", "tbl/x.parquet"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("publishing from a removed directory: %v", err)
		}
		if ok, _ := fs.Exists(f, "tbl/x.parquet"); ok {
			t.Fatal("a file from a removed directory was published")
		}
		if _, err := f.Create("_staging/p0/3-abc/y.parquet"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("creating in a removed directory: %v", err)
		}
	})

	t.Run("write file replaces atomically", func(t *testing.T) {
		f := newFS(t)
		for i := 0; i < 3; i++ {
			if err := f.WriteFile("_minipipe/tables/t/CURRENT", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := f.ReadFile("_minipipe/tables/t/CURRENT"); string(got) != "2" {
			t.Fatalf("got %q", got)
		}
		es, _ := f.ReadDir("_minipipe/tables/t")
		if len(es) != 1 {
			t.Fatalf("temporary files left: %v", es)
		}
	})

	t.Run("list and remove", func(t *testing.T) {
		f := newFS(t)
		for _, n := range []string{"d/3", "d/1", "d/2", "d/sub/x"} {
			if err := f.CreateExclusive(n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		es, err := f.ReadDir("d")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name)
		}
		if fmt.Sprint(names) != "[1 2 3 sub]" || !es[3].IsDir || es[0].Size != 3 {
			t.Fatalf("ReadDir: %v %+v", names, es)
		}
		if err := f.Remove("d/1"); err != nil {
			t.Fatal(err)
		}
		if err := f.RemoveAll("d/sub"); err != nil {
			t.Fatal(err)
		}
		es, _ = f.ReadDir("d")
		if len(es) != 2 {
			t.Fatalf("after removes: %+v", es)
		}
		if err := f.MkdirAll("e/f/g"); err != nil {
			t.Fatal(err)
		}
		if st, err := f.Stat("e/f/g"); err != nil || !st.IsDir {
			t.Fatalf("MkdirAll: %v %v", st, err)
		}
	})

	t.Run("paths cannot escape", func(t *testing.T) {
		f := newFS(t)
		for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/..", "..", ".", "a\\b", "a\x00b"} {
			if _, err := f.Create(bad); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Create(%q): %v", bad, err)
			}
			if err := f.CreateExclusive(bad, nil); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("CreateExclusive(%q): %v", bad, err)
			}
			if _, err := f.ReadFile(bad); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("ReadFile(%q): %v", bad, err)
			}
			if err := f.Rename("x", bad); !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Rename(x, %q): %v", bad, err)
			}
			if err := f.RemoveAll(bad); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("RemoveAll(%q): %v", bad, err)
			}
		}
	})

	t.Run("large file", func(t *testing.T) {
		f := newFS(t)
		if err := f.MkdirAll("d"); err != nil {
			t.Fatal(err)
		}
		w, err := f.Create("d/big")
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for i := 0; i < 64; i++ {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat("d/big")
		if err != nil || st.Size != int64(64*len(chunk)) {
			t.Fatalf("size %d %v", st.Size, err)
		}
	})
}
