package commit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// numberingCatalog numbers every column 100 + its position (as an Iceberg table would by its schema), or
// fails with err, or numbers nothing (hive).
type numberingCatalog struct {
	err   error
	hive  bool
	calls int
	gate  chan struct{} // when set, each call waits for a value from it
}

func (n *numberingCatalog) FieldIDs(_ context.Context, f manifest.File, _ string, cols *arrow.Schema) (*arrow.Schema, error) {
	if n.gate != nil {
		<-n.gate
	}
	n.calls++
	if n.err != nil {
		return nil, n.err
	}
	if n.hive {
		return nil, nil
	}
	fields := make([]arrow.Field, cols.NumFields())
	for i, c := range cols.Fields() {
		c.Metadata = arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{fmt.Sprint(100 + i)})
		fields[i] = c
	}
	return arrow.NewSchema(fields, nil), nil
}

func (n *numberingCatalog) Changes(manifest.File, string, *arrow.Schema, bool, bool) []manifest.CatalogChange {
	return nil
}

func (n *numberingCatalog) Relocate(string, int, [][2]string, string, string) ([]manifest.CatalogChange, error) {
	return nil, errors.New("no")
}
func (n *numberingCatalog) Apply(context.Context, []manifest.CatalogChange) error        { return nil }
func (n *numberingCatalog) Reconcile(context.Context, CatalogTable) error                { return nil }
func (n *numberingCatalog) MarkComplete(context.Context, string, int, [][2]string) error { return nil }

// fileIDs reads the field ids of a committed file's columns.
func (h *harness) fileIDs(name string) string {
	h.t.Helper()
	b, err := h.fs.ReadFile("t/" + name)
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := pqfile.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := pqarrow.FromParquet(r.MetaData().Schema, nil, r.MetaData().KeyValueMetadata())
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, f := range s.Fields() {
		id, _ := f.Metadata.GetValue("PARQUET:field_id")
		ids = append(ids, f.Name+"="+id)
	}
	return fmt.Sprint(ids)
}

// TestFieldIDs: the files of a table whose catalog numbers its columns carry the ids, asked once per table
// schema; when the catalog cannot answer the files go without them, and every row is committed all the same.
func TestFieldIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cat  *numberingCatalog
		want string
		miss float64
	}{
		{"iceberg", &numberingCatalog{}, "[id=100]", 0},
		{"catalog down", &numberingCatalog{err: errors.New("metastore unreachable")}, "[id=-1]", 2},
		{"hive", &numberingCatalog{hive: true}, "[id=-1]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, layout.Rotation{MaxRecords: 3}, 64)
			h.c.cfg.Catalog = tc.cat
			for i := int64(0); i < 6; i++ {
				h.send(h.p, i, h.batch("dt=d1", 0, 1, i))
			}
			want := []string{name("dt=d1", 0, 0), name("dt=d1", 0, 3)}
			if got := h.committed(); fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(h.acked()) != "[0 1 2 3 4 5]" {
				t.Fatalf("files %v acked %v", got, h.acked())
			}
			for _, f := range want {
				if got := h.fileIDs(f); got != tc.want {
					t.Fatalf("%s: field ids %s, want %s", f, got, tc.want)
				}
			}
			if tc.cat.calls != 1 {
				t.Fatalf("the catalog numbered the schema %d times, want once", tc.cat.calls)
			}
			if got := testutil.ToFloat64(h.c.cfg.Metrics.unnumbered); got != tc.miss {
				t.Fatalf("%v files counted without ids, want %v", got, tc.miss)
			}
		})
	}
}

// TestFieldIDsSlowCatalog: the commit stage never waits long on the catalog. A file's first row waits at most
// the budget for the first numbering (then goes without ids); a stale numbering is used while a newer one is
// asked for.
func TestFieldIDsSlowCatalog(t *testing.T) {
	defer func(b, f time.Duration) { fieldIDsBudget, fieldIDsFresh = b, f }(fieldIDsBudget, fieldIDsFresh)
	fieldIDsBudget = 50 * time.Millisecond
	h := newHarness(t, layout.Rotation{MaxRecords: 1}, 64)
	cat := &numberingCatalog{gate: make(chan struct{})}
	h.c.cfg.Catalog = cat
	start := time.Now()
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the first row waited %v on a catalog that does not answer", took)
	}
	if got := h.fileIDs(name("dt=d1", 0, 0)); got != "[id=-1]" {
		t.Fatalf("a file begun before the catalog answered has ids %s", got)
	}
	// The next file of the schema does not wait again while the catalog still does not answer.
	start = time.Now()
	h.send(h.p, 1, h.batch("dt=d1", 0, 1, 1))
	if got, took := h.fileIDs(name("dt=d1", 0, 1)), time.Since(start); got != "[id=-1]" || took > fieldIDsBudget {
		t.Fatalf("a second file before the answer: ids %s after %v", got, took)
	}
	cat.gate <- struct{}{} // the catalog answers
	answered := func() bool {
		h.c.ids.mu.Lock()
		defer h.c.ids.mu.Unlock()
		for _, e := range h.c.ids.m {
			return e.answered && !e.asking
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !answered(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the answer was not kept")
		}
	}
	h.send(h.p, 2, h.batch("dt=d1", 0, 1, 2))
	if got := h.fileIDs(name("dt=d1", 0, 2)); got != "[id=100]" {
		t.Fatalf("after the answer: %s", got)
	}
	// Stale: asked again in the background (the catalog hangs), the file uses the numbering known.
	fieldIDsFresh = 0
	start = time.Now()
	h.send(h.p, 3, h.batch("dt=d1", 0, 1, 3))
	if got, took := h.fileIDs(name("dt=d1", 0, 3)), time.Since(start); got != "[id=100]" || took > fieldIDsBudget {
		t.Fatalf("during a refresh: ids %s after %v", got, took)
	}
	cat.gate <- struct{}{}
	if got := testutil.ToFloat64(h.c.cfg.Metrics.unnumbered); got != 2 {
		t.Fatalf("%v files counted without ids, want 2", got)
	}
}
