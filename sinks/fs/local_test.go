package fs_test

import (
	"strings"
	"testing"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/fs/fstest"
)

func TestLocalConformance(t *testing.T) {
	fstest.Run(t, func(t *testing.T) fs.FS {
		l, err := fs.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

func TestLocalURI(t *testing.T) {
	l, _ := fs.NewLocal(t.TempDir())
	if u := l.URI("t/dt=2026-11-25/a b.parquet"); !strings.HasPrefix(u, "file:///") || !strings.HasSuffix(u, "/t/dt=2026-11-25/a%20b.parquet") {
		t.Errorf("URI %q", u)
	}
}
