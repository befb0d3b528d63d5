package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Limits bound what one statement of a shared session (the console) may cost.
type Limits struct {
	Timeout  time.Duration // default 30s
	MaxRows  int           // rows returned at most (default 10,000); Result.Truncated says more were left
	MaxBytes int           // bytes of values returned at most (default 32 MiB); values past MaxCell are cut
}

// MaxCell is the longest value a shared session returns whole; longer ones end in "…" (Result.Truncated).
const MaxCell = 64 << 10

func (l *Limits) defaults() {
	if l.Timeout <= 0 {
		l.Timeout = 30 * time.Second
	}
	if l.MaxRows <= 0 {
		l.MaxRows = 10000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 32 << 20
	}
}

// ForbiddenError is a statement a read-only session does not run: what it is and why.
type ForbiddenError struct{ Reason string }

func (e *ForbiddenError) Error() string { return e.Reason }

// Lock makes the database read-only for whoever queries it next: files can be read only under roots (the
// warehouse's local directories; its views were made before), no extension is installed or loaded, no
// setting changes afterwards (lock_configuration), DuckDB's memory is capped (e.g. "1GB"), nothing spills
// to disk and it takes half the cores. ReadOnly then runs only single SELECT statements.
func (d *DB) Lock(ctx context.Context, roots []string, memory string) error {
	dirs := make([]string, 0, len(roots))
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return fmt.Errorf("warehouse root %s: %w", r, err)
		}
		dirs = append(dirs, quoteString(strings.TrimSuffix(abs, "/")+"/"))
	}
	stmts := []string{
		"SET temp_directory = ''",                                   // nothing spills to disk: a statement past the memory cap fails instead
		fmt.Sprintf("SET threads = %d", max(1, runtime.NumCPU()/2)), // the pipeline keeps the other half
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allowed_directories = [" + strings.Join(dirs, ", ") + "]",
		"SET enable_external_access = false",
	}
	if memory != "" {
		stmts = append(stmts, "SET memory_limit = "+quoteString(memory))
	}
	stmts = append(stmts, "SET lock_configuration = true")
	for _, s := range stmts {
		if _, err := d.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("locking DuckDB (%s): %w", s, err)
		}
	}
	return nil
}

// ReadOnly runs one SELECT statement (WITH, VALUES, FROM-first, SUMMARIZE and DESCRIBE included) within
// the limits. Anything else — several statements, COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, CREATE, INSERT,
// UPDATE, DELETE, DROP, EXPORT, CALL — is refused with a *ForbiddenError before DuckDB runs any of it;
// reading files outside the roots given to Lock fails in DuckDB with its own message.
func (d *DB) ReadOnly(ctx context.Context, sqlText string, lim Limits) (*Result, error) {
	lim.defaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	if err := d.checkSelect(ctx, sqlText); err != nil {
		return nil, err
	}
	res, err := d.queryBounded(ctx, sqlText, lim)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("the statement ran longer than %s and was cancelled", lim.Timeout)
	}
	return res, err
}

// checkSelect asks DuckDB's own parser what the text holds, without running it: json_serialize_sql parses
// SELECT statements only and lists each one. Then the statement is prepared (one statement: the driver runs
// nothing while preparing it) and its type checked again.
func (d *DB) checkSelect(ctx context.Context, sqlText string) error {
	var out string
	if err := d.db.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", sqlText).Scan(&out); err != nil {
		return fmt.Errorf("checking the statement: %w", err)
	}
	var parsed struct {
		Error        bool              `json:"error"`
		ErrorType    string            `json:"error_type"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("checking the statement: %w", err)
	}
	switch {
	case parsed.Error && strings.Contains(parsed.ErrorMessage, "Only SELECT"):
		switch w := firstWord(sqlText); w {
		case "SELECT", "WITH", "FROM", "VALUES", "(", "TABLE":
			return &ForbiddenError{Reason: "only a single SELECT statement runs here (read-only): the text holds another kind of statement after it"}
		default:
			return &ForbiddenError{Reason: "only SELECT statements run here (read-only): " + w + " is not one"}
		}
	case parsed.Error:
		return fmt.Errorf("%s: %s", parsed.ErrorType, parsed.ErrorMessage)
	case len(parsed.Statements) == 0:
		return &ForbiddenError{Reason: "no statement given"}
	case len(parsed.Statements) > 1:
		return &ForbiddenError{Reason: fmt.Sprintf("one statement at a time (%d given)", len(parsed.Statements))}
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return errors.New("the DuckDB driver cannot prepare statements")
		}
		st, err := pc.PrepareContext(ctx, sqlText)
		if err != nil {
			return err
		}
		defer st.Close()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return errors.New("unexpected DuckDB statement type")
		}
		typ, err := ds.StatementType()
		if err != nil {
			return err
		}
		if typ != duckdb.STATEMENT_TYPE_SELECT {
			return &ForbiddenError{Reason: "only SELECT statements run here (read-only): " + firstWord(sqlText) + " is not one"}
		}
		return nil
	})
}

// firstWord is a statement's keyword, for messages.
func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "an empty statement"
	}
	w := strings.ToUpper(strings.TrimRight(f[0], ";("))
	if len(w) > 20 {
		w = w[:20]
	}
	return w
}

// query runs a statement and keeps at most maxRows rows (maxRows 0: all).
func (d *DB) query(ctx context.Context, sqlText string, maxRows int) (*Result, error) {
	rows, err := d.db.QueryContext(ctx, sqlText)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows, maxRows)
}

// queryBounded runs a statement and keeps what the limits allow.
func (d *DB) queryBounded(ctx context.Context, sqlText string, lim Limits) (*Result, error) {
	rows, err := d.db.QueryContext(ctx, sqlText)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectBounded(rows, lim.MaxRows, lim.MaxBytes)
}

// collect reads rows into a Result, at most maxRows (0: all).
func collect(rows *sql.Rows, maxRows int) (*Result, error) { return collectBounded(rows, maxRows, 0) }

// collectBounded reads rows into a Result: at most maxRows rows (0: all) and, with maxBytes > 0, at most
// maxBytes bytes of values, each value cut at MaxCell.
func collectBounded(rows *sql.Rows, maxRows, maxBytes int) (*Result, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, _ := rows.ColumnTypes()
	res := &Result{Columns: cols}
	size := 0
	for _, t := range types {
		res.Types = append(res.Types, t.DatabaseTypeName())
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) == maxRows {
			res.Truncated = true
			break
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			if v == nil {
				continue
			}
			s := render(v)
			if maxBytes > 0 && len(s) > MaxCell {
				s = strings.ToValidUTF8(s[:MaxCell], "") + "…"
				res.Truncated = true
			}
			size += len(s)
			row[i] = &s
		}
		if maxBytes > 0 && size > maxBytes {
			res.Truncated = true
			break
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}
