// Package query runs SQL over the warehouse with DuckDB (in-process): every table is a view over its
// committed Parquet files, read by column name so that files written with different schema versions line
// up, with the Hive partition columns as strings. `minipipe query` runs any statement (its user owns the
// machine); a shared session (the console, issue 11) locks the database (DB.Lock) and runs single SELECT
// statements only, with a timeout and a row cap (DB.ReadOnly).
package query

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

// View is a table as DuckDB shows it: a view over its committed files (absolute local paths).
type View struct {
	Name            string
	Files           []string
	PartitionFields []string // Hive partition columns, typed VARCHAR
}

// DB is an in-memory DuckDB with one view per table.
type DB struct {
	db *sql.DB
}

// Open starts DuckDB and creates the views.
func Open(ctx context.Context, tables []View) (*DB, error) { return OpenConns(ctx, tables, 1) }

// OpenConns is Open with up to conns connections, so that as many statements run at once (the connections
// share the in-memory database: its views and settings).
func OpenConns(ctx context.Context, tables []View, conns int) (*DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	db.SetMaxOpenConns(max(conns, 1))
	for _, t := range tables {
		if err := createView(ctx, db, t); err != nil {
			db.Close()
			return nil, err
		}
	}
	return &DB{db: db}, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func createView(ctx context.Context, db *sql.DB, t View) error {
	var stmt string
	if len(t.Files) == 0 {
		// A table with no committed file yet: an empty view with only its partition columns.
		cols := []string{"NULL::VARCHAR AS _empty"}
		for _, p := range t.PartitionFields {
			cols = append(cols, "NULL::VARCHAR AS "+quoteIdent(p))
		}
		stmt = fmt.Sprintf("CREATE VIEW %s AS SELECT %s WHERE false", quoteIdent(t.Name), strings.Join(cols, ", "))
	} else {
		files := make([]string, len(t.Files))
		for i, f := range t.Files {
			files[i] = quoteString(f)
		}
		hiveTypes := ""
		if len(t.PartitionFields) > 0 {
			parts := make([]string, len(t.PartitionFields))
			for i, p := range t.PartitionFields {
				parts[i] = fmt.Sprintf("%s: 'VARCHAR'", quoteString(p))
			}
			hiveTypes = ", hive_types = {" + strings.Join(parts, ", ") + "}"
		}
		stmt = fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet([%s], union_by_name = true, hive_partitioning = %t%s)",
			quoteIdent(t.Name), strings.Join(files, ", "), len(t.PartitionFields) > 0, hiveTypes)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("view %s: %w", t.Name, err)
	}
	return nil
}

// Close closes DuckDB.
func (d *DB) Close() error { return d.db.Close() }

// Result is a query's columns and rows, each value rendered as text (nil for NULL).
type Result struct {
	Columns   []string
	Types     []string
	Rows      [][]*string
	Truncated bool // more rows were left than the limit let through (ReadOnly)
}

// Query runs one SQL statement (any: the CLI's user owns the machine; see ReadOnly for shared sessions).
func (d *DB) Query(ctx context.Context, sqlText string) (*Result, error) {
	return d.query(ctx, sqlText, 0)
}

func render(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.UTC().Format("2006-01-02 15:04:05")
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	case *big.Int:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// Write renders a result as table (aligned, NULL for nulls), csv (RFC 4180 with a header row, NULL as an
// empty field) or json (one object per row).
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case "", "table":
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, strings.Join(r.Columns, "\t| "))
		seps := make([]string, len(r.Columns))
		for i, c := range r.Columns {
			seps[i] = strings.Repeat("-", max(len(c), 4))
		}
		fmt.Fprintln(tw, strings.Join(seps, "\t| "))
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				if v == nil {
					cells[i] = "NULL"
				} else {
					cells[i] = strings.ReplaceAll(*v, "\n", `\n`)
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t| "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		unit := "rows"
		if len(r.Rows) == 1 {
			unit = "row"
		}
		_, err := fmt.Fprintf(w, "(%d %s)\n", len(r.Rows), unit)
		return err
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(r.Columns); err != nil {
			return err
		}
		for _, row := range r.Rows {
			rec := make([]string, len(row))
			for i, v := range row {
				if v != nil {
					rec[i] = *v
				}
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, row := range r.Rows {
			obj := make([]byte, 0, 64)
			obj = append(obj, '{')
			for i, v := range row {
				if i > 0 {
					obj = append(obj, ',')
				}
				k, _ := json.Marshal(r.Columns[i])
				obj = append(obj, k...)
				obj = append(obj, ':')
				if v == nil {
					obj = append(obj, "null"...)
				} else {
					obj = append(obj, jsonValue(*v, r.Types[i])...)
				}
			}
			obj = append(obj, '}', '\n')
			if _, err := w.Write(obj); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown format %q: use table, csv or json", format)
}

// jsonValue keeps numbers and booleans as JSON numbers and booleans; everything else is a string.
func jsonValue(s, typ string) []byte {
	switch {
	case strings.HasPrefix(typ, "INT"), strings.HasPrefix(typ, "BIGINT"), strings.HasPrefix(typ, "SMALLINT"),
		strings.HasPrefix(typ, "TINYINT"), strings.HasPrefix(typ, "HUGEINT"), strings.HasPrefix(typ, "UBIGINT"),
		strings.HasPrefix(typ, "UINTEGER"), typ == "DOUBLE", typ == "FLOAT", strings.HasPrefix(typ, "DECIMAL"):
		if json.Valid([]byte(s)) {
			return []byte(s)
		}
	case typ == "BOOLEAN":
		if s == "true" || s == "false" {
			return []byte(s)
		}
	}
	b, _ := json.Marshal(s)
	return b
}
