package topology

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minipipe/minipipe/sinks/fs"
)

// remote hides the local warehouse's LocalPath: it reads as a remote one, through the fs interface alone.
type remote struct{ fs.FS }

func TestMirrorAndPrune(t *testing.T) {
	local, err := fs.Open("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wh := remote{local}
	put := func(name, data string) {
		t.Helper()
		if err := wh.MkdirAll(filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
		if err := wh.WriteFile(name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	put("t/dt=1/a.parquet", "aaaa")
	put("t/dt=2/b.parquet", "bb")
	put("t/dt=2/_SUCCESS", "")
	put("t/dt=2/.hidden.parquet", "x")
	put("t/dt=2/notes.txt", "x")
	cache := t.TempDir()
	mirrorOf := func(location string, parts ...string) []string {
		t.Helper()
		ti := TableInfo{Location: location}
		for _, p := range parts {
			dir, path, _ := strings.Cut(p, "@")
			if path == "" {
				path = dir
			}
			ti.Partitions = append(ti.Partitions, PartitionInfo{Path: path, Dir: fs.Join(location, dir)})
		}
		if len(parts) == 0 {
			ti.Partitions = []PartitionInfo{{Dir: location}}
		}
		files, err := mirror(context.Background(), wh, ti, filepath.Join(cache, location))
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range files {
			files[i], _ = filepath.Rel(cache, f)
		}
		return files
	}
	if got, want := mirrorOf("t", "dt=1", "dt=2"), []string{"t/dt=1/a.parquet", "t/dt=2/b.parquet"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror: %v, want %v", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(cache, "t/dt=1/a.parquet")); err != nil || string(b) != "aaaa" {
		t.Fatalf("mirrored a.parquet: %q %v", b, err)
	}
	// A file gone from the table goes from the mirror; a new one comes.
	if err := wh.Remove("t/dt=1/a.parquet"); err != nil {
		t.Fatal(err)
	}
	put("t/dt=3/c.parquet", "ccc")
	if got, want := mirrorOf("t", "dt=1", "dt=2", "dt=3"), []string{"t/dt=2/b.parquet", "t/dt=3/c.parquet"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror after a change: %v, want %v", got, want)
	}
	// A compacted partition is read from its compaction's directory alone: the files it replaced, still in
	// the partition's path, are not the table's any more.
	put("t/dt=2/_c1e1/m.parquet", "mm")
	if got, want := mirrorOf("t", "dt=2/_c1e1@dt=2", "dt=3"), []string{"t/dt=2/_c1e1/m.parquet", "t/dt=3/c.parquet"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror of a compacted partition: %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(cache, "t/dt=2/b.parquet")); !os.IsNotExist(err) {
		t.Fatalf("the replaced b.parquet is still mirrored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "t/dt=1/a.parquet")); !os.IsNotExist(err) {
		t.Fatalf("a.parquet is still mirrored: %v", err)
	}
	// A replay's new generation: the old location's mirror is pruned, other tables' stay.
	put("t.g2/dt=1/d.parquet", "d")
	put("u/e.parquet", "e")
	mirrorOf("t.g2")
	mirrorOf("u")
	pruneMirrors(cache, []TableInfo{{Name: "t", Location: "t.g2"}, {Name: "u", Location: "u"}})
	var left []string
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"t.g2", "u"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("after pruning the cache holds %v, want %v", left, want)
	}
}
