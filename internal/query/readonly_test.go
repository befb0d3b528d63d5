package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lockedDB is a DuckDB with a view t over a Parquet file under warehouse, locked to warehouse; outside
// holds a file it must not read.
func lockedDB(t *testing.T) (db *DB, warehouse, outside string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	warehouse = filepath.Join(dir, "warehouse")
	outside = filepath.Join(dir, "outside")
	for _, d := range []string{filepath.Join(warehouse, "t"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("password\nhunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(warehouse, "t", "f.parquet")
	maker, err := Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maker.db.ExecContext(ctx, `COPY (SELECT range AS id, 'row ' || range AS name FROM range(50000)) TO `+quoteString(file)+` (FORMAT parquet)`); err != nil {
		t.Fatal(err)
	}
	maker.Close()
	db, err = Open(ctx, []View{{Name: "t", Files: []string{file}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Lock(ctx, []string{warehouse}, "256MB"); err != nil {
		t.Fatal(err)
	}
	return db, warehouse, outside
}

// TestReadOnlyRefuses: every statement that writes, reaches outside the warehouse or changes the session is
// refused with a clear message, before DuckDB runs any of it; SELECTs over the tables run, capped.
func TestReadOnlyRefuses(t *testing.T) {
	ctx := context.Background()
	db, warehouse, outside := lockedDB(t)
	secret := quoteString(filepath.Join(outside, "secret.csv"))
	forbidden := []struct{ sql, want string }{
		{`COPY t TO ` + quoteString(filepath.Join(warehouse, "x.csv")), "only SELECT"},
		{`COPY (SELECT 1) TO ` + quoteString(filepath.Join(outside, "x.csv")), "only SELECT"},
		{`ATTACH ` + quoteString(filepath.Join(outside, "x.db")), "only SELECT"},
		{`INSTALL httpfs`, "only SELECT"},
		{`LOAD httpfs`, "only SELECT"},
		{`SET enable_external_access = true`, "only SELECT"},
		{`RESET lock_configuration`, "only SELECT"},
		{`PRAGMA version`, "only SELECT"},
		{`CREATE TABLE x AS SELECT 1`, "only SELECT"},
		{`CREATE OR REPLACE VIEW t AS SELECT 1`, "only SELECT"},
		{`INSERT INTO t VALUES (1, 'x')`, "only SELECT"},
		{`UPDATE t SET name = 'x'`, "only SELECT"},
		{`DELETE FROM t`, "only SELECT"},
		{`DROP VIEW t`, "only SELECT"},
		{`EXPORT DATABASE ` + quoteString(outside), "only SELECT"},
		{`CALL pragma_version()`, "only SELECT"},
		{`DETACH memory`, "only SELECT"},
		{`SELECT 1; DROP VIEW t`, "only a single SELECT"},
		{`SELECT 1; SELECT 2`, "one statement at a time (2 given)"},
		{`DROP VIEW t; SELECT 1`, ""}, // refused (the drop is not a SELECT), however the parser puts it
		{`SELECT * FROM read_csv(` + secret + `)`, ""},
		{`SELECT * FROM ` + secret, ""},
		{`SELECT * FROM read_text(` + secret + `)`, ""},
		{`SELECT * FROM glob(` + quoteString(outside+"/*") + `)`, ""},
		{`SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')`, ""},
		{`SELECT getenv('HOME')`, ""},
		{``, ""},
	}
	for _, c := range forbidden {
		res, err := db.ReadOnly(ctx, c.sql, Limits{})
		if err == nil {
			t.Errorf("%q ran: %v", c.sql, res.Rows)
			continue
		}
		t.Logf("%q: %v", c.sql, err)
		if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a message with %q", c.sql, err, c.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the file: %v", c.sql, err)
		}
	}
	// Nothing was changed by any of them: the view is there, the configuration locked.
	res, err := db.ReadOnly(ctx, `SELECT count(*) AS n, max(name) AS m FROM t`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if *res.Rows[0][0] != "50000" {
		t.Fatalf("count %s after the refused statements", *res.Rows[0][0])
	}
	var locked string
	if err := db.db.QueryRowContext(ctx, `SELECT current_setting('lock_configuration')::VARCHAR`).Scan(&locked); err != nil || locked != "true" {
		t.Fatalf("lock_configuration %q (%v)", locked, err)
	}

	// SELECTs of every shape run; the row cap truncates and says so.
	for _, q := range []string{
		`WITH x AS (SELECT id FROM t WHERE id < 3) SELECT * FROM x ORDER BY id`,
		`FROM t WHERE id < 3 ORDER BY id`,
		`SELECT * FROM (VALUES (1), (2), (3)) v(id)`,
		`SELECT id FROM t WHERE id < 3 ORDER BY id;`,
	} {
		res, err := db.ReadOnly(ctx, q, Limits{})
		if err != nil {
			t.Errorf("%q: %v", q, err)
		} else if len(res.Rows) != 3 || res.Truncated {
			t.Errorf("%q: %d rows (truncated %v), want 3", q, len(res.Rows), res.Truncated)
		}
	}
	res, err = db.ReadOnly(ctx, `SELECT * FROM t`, Limits{MaxRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 100 || !res.Truncated {
		t.Fatalf("%d rows, truncated %v; want 100, true", len(res.Rows), res.Truncated)
	}
	var fe *ForbiddenError
	if _, err := db.ReadOnly(ctx, `DROP VIEW t`, Limits{}); !errors.As(err, &fe) {
		t.Fatalf("DROP gave %v, want a *ForbiddenError", err)
	}
}

// TestReadOnlyTimeout: a statement that runs past the timeout is cancelled with a message saying so, and
// the database answers the next one.
func TestReadOnlyTimeout(t *testing.T) {
	ctx := context.Background()
	db, _, _ := lockedDB(t)
	start := time.Now()
	_, err := db.ReadOnly(ctx, `SELECT count(*) FROM range(100000000000) a`, Limits{Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "longer than 300ms") {
		t.Fatalf("a long statement gave %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the timeout took %s to act", d)
	}
	if _, err := db.ReadOnly(ctx, `SELECT 1`, Limits{}); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
}

// TestReadOnlyBoundsBytes: a statement returning huge values costs the process what Limits allow, not what
// the statement asks (rows of 40 MB each would otherwise all be held, then copied into JSON).
func TestReadOnlyBoundsBytes(t *testing.T) {
	ctx := context.Background()
	db, _, _ := lockedDB(t)
	res, err := db.ReadOnly(ctx, `SELECT repeat('x', 4000000) AS big FROM range(100)`, Limits{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Rows) > 16 || len(*res.Rows[0][0]) > MaxCell+len("…") {
		t.Fatalf("kept %d rows, the first %d bytes long (truncated %v)", len(res.Rows), len(*res.Rows[0][0]), res.Truncated)
	}
	// Nothing spills to disk: a statement past the memory cap fails with DuckDB's message.
	var threads, temp string
	if err := db.db.QueryRowContext(ctx, `SELECT current_setting('threads')::VARCHAR, current_setting('temp_directory')`).Scan(&threads, &temp); err != nil || temp != "" || threads == "" {
		t.Fatalf("threads %q, temp_directory %q: %v", threads, temp, err)
	}
}
