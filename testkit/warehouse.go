package testkit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/topology"
)

// Query runs SQL over a warehouse (local, HDFS or S3) the way `minipipe query` does, and returns the rows as text
// (NULL for nulls), one []string per row.
func Query(t testing.TB, warehouse, sql string) ([][]string, error) {
	t.Helper()
	wh, err := fs.Open(warehouse)
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	tables, release, err := topology.QueryViews(context.Background(), wh, queryCache(t, warehouse), sql)
	if err != nil {
		return nil, err
	}
	defer release()
	db, err := query.Open(context.Background(), tables)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res, err := db.Query(context.Background(), sql)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = *v
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// WaitQuery polls a query until check accepts its rows, failing the test after timeout.
func WaitQuery(t testing.TB, warehouse, sql string, timeout time.Duration, check func([][]string) bool) [][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var rows [][]string
	var err error
	for time.Now().Before(deadline) {
		rows, err = Query(t, warehouse, sql)
		if err == nil && check(rows) {
			return rows
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("after %v, %s gives %v (error %v)", timeout, sql, rows, err)
	return nil
}

// Warehouse is the warehouse URL of a test configuration.
func Warehouse(cfg topology.Config) string { return cfg.WarehouseURL() }

// StagingFiles lists what is left under the warehouse's staging directories (any backend).
func StagingFiles(t testing.TB, warehouse string) []string {
	t.Helper()
	wh, err := fs.Open(warehouse)
	if err != nil {
		t.Fatalf("opening %s: %v", warehouse, err)
	}
	defer wh.Close()
	var files []string
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := wh.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.IsDir {
				walk(fs.Join(dir, e.Name))
			} else {
				files = append(files, fs.Join(dir, e.Name))
			}
		}
	}
	walk(fs.Join("_minipipe", "staging"))
	return files
}

// CountDistinct returns count(*) and count(DISTINCT col) of a table.
func CountDistinct(t testing.TB, warehouse, table, col string) (int, int, error) {
	rows, err := Query(t, warehouse, countDistinctSQL(table, col))
	if err != nil {
		return 0, 0, err
	}
	return parseCounts(rows)
}

func countDistinctSQL(table, col string) string {
	return fmt.Sprintf("SELECT count(*), count(DISTINCT %s) FROM %s", col, table)
}

// parseCounts reads the two numbers of a count/count-distinct query's only row.
func parseCounts(rows [][]string) (int, int, error) {
	if len(rows) != 1 || len(rows[0]) != 2 {
		return 0, 0, fmt.Errorf("count query returned %v", rows)
	}
	var n, d int
	if _, err := fmt.Sscan(rows[0][0], &n); err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscan(rows[0][1], &d); err != nil {
		return 0, 0, err
	}
	return n, d, nil
}

var queryCaches sync.Map // test name + warehouse → the test's mirror of its remote tables

// queryCache is where a test's queries of a remote warehouse keep their copies (a temporary directory of the
// test, kept across its queries so each file is copied once).
func queryCache(t testing.TB, warehouse string) string {
	key := t.Name() + "\x00" + warehouse
	if d, ok := queryCaches.Load(key); ok {
		return d.(string)
	}
	d, _ := queryCaches.LoadOrStore(key, t.TempDir())
	return d.(string)
}
