package console

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minipipe/minipipe/internal/query"
)

// duck is one DuckDB with the views of one set of tables, shared by the statements running on it and
// closed when the last of them ends after a newer one replaced it.
type duck struct {
	db   *query.DB
	mu   sync.Mutex
	refs int // statements running, plus one while it is current
}

func (d *duck) acquire() { d.mu.Lock(); d.refs++; d.mu.Unlock() }

func (d *duck) release() {
	d.mu.Lock()
	d.refs--
	last := d.refs == 0
	d.mu.Unlock()
	if last {
		d.db.Close()
	}
}

// duckdb returns the DuckDB of the current tables, made again (views and lock) when the tables changed: a
// view reads each partition's directory by glob, so new files of a known partition need no new view; a new
// partition, or one a compaction moved to another directory, does.
func (c *Console) duckdb(ctx context.Context) (*duck, error) {
	if c.deps.Views == nil {
		return nil, errors.New("DuckDB reads local warehouses (file://) only: run SQL on Trino (--trino) for this one")
	}
	snap, err := c.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	var key strings.Builder
	for _, t := range snap.Tables {
		fmt.Fprintf(&key, "%s/%d/%v/%t", t.Name, t.Generation, t.PartitionColumns, t.Files > 0)
		for _, p := range t.Partitions {
			fmt.Fprintf(&key, "|%s", p.Dir)
		}
		key.WriteByte(';')
	}
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	if c.closed {
		return nil, errors.New("the console is stopping")
	}
	if c.db != nil && c.dbViews == key.String() {
		c.db.acquire()
		return c.db, nil
	}
	views, roots, err := c.deps.Views(snap.Tables)
	if err != nil {
		return nil, err
	}
	db, err := query.OpenConns(ctx, views, 4) // statements of several pages and tiles at once
	if err != nil {
		return nil, err
	}
	if err := db.Lock(ctx, roots, c.cfg.Memory); err != nil {
		db.Close()
		return nil, err
	}
	if c.db != nil {
		c.db.release()
	}
	c.db, c.dbViews = &duck{db: db, refs: 1}, key.String()
	c.db.acquire()
	return c.db, nil
}

// resultJSON is a result as the pages read it.
type resultJSON struct {
	Engine    string      `json:"engine"`
	Columns   []string    `json:"columns"`
	Types     []string    `json:"types"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated"`
	TookMS    float64     `json:"took_ms"` // the engine's time (statement sent to last row read)
}

// run runs one read-only statement on an engine.
func (c *Console) run(ctx context.Context, engine, stmt string, lim query.Limits) (*resultJSON, time.Duration, error) {
	if lim.Timeout <= 0 {
		lim.Timeout = c.cfg.Limits.Timeout
	}
	if lim.MaxRows <= 0 {
		lim.MaxRows = c.cfg.Limits.MaxRows
	}
	var res *query.Result
	var err error
	start := time.Now()
	switch engine {
	case "", "duckdb":
		engine = "duckdb"
		var d *duck
		if d, err = c.duckdb(ctx); err == nil {
			start = time.Now()
			res, err = d.db.ReadOnly(ctx, stmt, lim)
			d.release()
		}
	case "trino":
		if c.trino == nil {
			return nil, 0, &InvalidError{"Trino is not configured: start minipipe with --trino http://host:port"}
		}
		res, err = c.trino.ReadOnly(ctx, stmt, lim)
	default:
		return nil, 0, &InvalidError{fmt.Sprintf("engine %q: duckdb or trino", engine)}
	}
	took := time.Since(start)
	outcome := "ok"
	var forb *query.ForbiddenError
	switch {
	case errors.As(err, &forb):
		outcome = "forbidden"
	case err != nil && ctx.Err() != nil:
		outcome = "cancelled"
	case err != nil:
		outcome = "error"
	}
	c.metrics.queries.WithLabelValues(engine, outcome).Inc()
	if err != nil {
		return nil, took, err
	}
	c.metrics.duration.WithLabelValues(engine).Observe(took.Seconds())
	out := &resultJSON{Engine: engine, Columns: res.Columns, Types: res.Types, Rows: res.Rows, Truncated: res.Truncated, TookMS: float64(took.Microseconds()) / 1000}
	if out.Rows == nil {
		out.Rows = [][]*string{}
	}
	return out, took, nil
}

// sql runs the SQL page's statement: JSON for the page, or CSV (RFC 4180, a header row, NULL as an empty
// field) with ?format=csv for the download. Closing the request (the page's Cancel) cancels the statement.
func (c *Console) sql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SQL     string `json:"sql"`
		Engine  string `json:"engine"`
		MaxRows int    `json:"max_rows"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.SQL) > maxSQLBytes {
		fail(w, http.StatusBadRequest, 40004, "a statement is at most %d bytes", maxSQLBytes)
		return
	}
	lim := query.Limits{}
	if req.MaxRows > 0 && req.MaxRows < c.cfg.Limits.MaxRows {
		lim.MaxRows = req.MaxRows
	}
	res, _, err := c.run(r.Context(), req.Engine, req.SQL, lim)
	if err != nil {
		var forb *query.ForbiddenError
		var inv *InvalidError
		switch {
		case errors.As(err, &forb), errors.As(err, &inv):
			failErr(w, err)
		case r.Context().Err() != nil:
			failErr(w, context.Canceled)
		default: // the engine's own message: a syntax error, an unknown column, a timeout
			fail(w, http.StatusBadRequest, 40005, "%s", err.Error())
		}
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="result.csv"`)
		cw := csv.NewWriter(w)
		cw.UseCRLF = true
		_ = cw.Write(res.Columns)
		rec := make([]string, len(res.Columns))
		for _, row := range res.Rows {
			for i, v := range row {
				rec[i] = ""
				if v != nil {
					rec[i] = *v
				}
			}
			_ = cw.Write(rec)
		}
		cw.Flush()
		return
	}
	writeJSON(w, http.StatusOK, res)
}
