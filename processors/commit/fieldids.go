package commit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/minipipe/minipipe/sinks/manifest"
)

// FieldNumbering is a Catalog whose tables number their columns (Iceberg). FieldIDs returns a file's
// columns with each field's id in its metadata (PARQUET:field_id, nested fields too), making or evolving the
// table first so that it has them; nil columns and no error: the table numbers none (a Hive table).
type FieldNumbering interface {
	FieldIDs(ctx context.Context, f manifest.File, location string, cols *arrow.Schema) (*arrow.Schema, error)
}

// ErrNoFieldIDs marks a FieldIDs error that is no fault: the file goes without ids by design (a replay's
// generation, before it is swapped in, has no table to number it yet).
var ErrNoFieldIDs = errors.New("the file's columns are not numbered")

// The numbering of a table's columns is asked of the catalog beside the commit stage, which never waits on
// the catalog for long: a file's first row waits at most fieldIDsBudget for the first answer for its table
// schema on the instance; a numbering older than fieldIDsFresh (another engine may have renamed or dropped
// a column) is asked again in the background while the previous one is used; after a failure, files go
// without ids at once, and the catalog is asked again (in the background) after fieldIDsRetry.
var (
	fieldIDsFresh  = 2 * time.Minute
	fieldIDsRetry  = time.Minute
	fieldIDsBudget = 15 * time.Second
	fieldIDsIdle   = 30 * time.Minute // an entry unused this long is dropped
	fieldIDsCall   = 2 * time.Minute  // the longest one background call may take
)

type idKey struct {
	table         string
	gen, schemaID int
}

// idEntry is a key's numbering. Its fields are guarded by fieldIDs.mu.
type idEntry struct {
	cols     *arrow.Schema // numbered; nil: none (a Hive table, or not known yet)
	ok       bool          // the last answer was a numbering (cols, or nil for none)
	answered bool          // the catalog has answered once
	at       time.Time     // of the last answer
	used     time.Time
	asking   bool          // a call is under way
	wake     chan struct{} // closed when the call under way ends
	late     bool          // a file gave up waiting for the call under way: the next ones do not wait
}

// fieldIDs caches the numbering of each table generation's schemas, asking the catalog once for all the
// commit partitions of the instance.
type fieldIDs struct {
	mu    sync.Mutex
	m     map[idKey]*idEntry
	swept time.Time
}

// numbered returns cols numbered for the file of f at location, or cols as they are when the catalog numbers
// none or cannot now (the file then goes without ids: readers use the table's name mapping).
func (c *Committer) numbered(ctx context.Context, f manifest.File, location string, cols *arrow.Schema) *arrow.Schema {
	fn, ok := c.cfg.Catalog.(FieldNumbering)
	if !ok {
		return cols
	}
	k := idKey{f.Table, f.Generation, f.SchemaID}
	ids := &c.ids
	ids.mu.Lock()
	now := time.Now()
	if ids.m == nil {
		ids.m = map[idKey]*idEntry{}
	}
	if now.Sub(ids.swept) > fieldIDsIdle {
		ids.swept = now
		for key, e := range ids.m {
			if !e.asking && now.Sub(e.used) > fieldIDsIdle {
				delete(ids.m, key)
			}
		}
	}
	e := ids.m[k]
	if e == nil {
		e = &idEntry{}
		ids.m[k] = e
	}
	e.used = now
	life := fieldIDsFresh
	if !e.ok {
		life = fieldIDsRetry
	}
	if !e.asking && (!e.answered || now.Sub(e.at) > life) {
		e.asking, e.wake = true, make(chan struct{})
		go c.askFieldIDs(fn, e, f, location, cols)
	}
	if e.answered || e.late {
		// The last answer: a numbering (the previous one while a newer is asked for), or a failure (files go
		// without ids while the catalog is asked again); or none yet, with a file that waited for it in vain.
		out := e.cols
		failed := !e.ok
		ids.mu.Unlock()
		return c.withIDs(out, cols, failed)
	}
	wake := e.wake
	ids.mu.Unlock()
	timer := time.NewTimer(fieldIDsBudget)
	defer timer.Stop()
	select {
	case <-wake:
	case <-timer.C:
	case <-ctx.Done():
	}
	ids.mu.Lock()
	out, answered, failed := e.cols, e.answered, !e.ok
	if !answered {
		e.late = true
	}
	ids.mu.Unlock()
	return c.withIDs(out, cols, failed || !answered)
}

// withIDs is numbered's answer: the numbered columns, or the file's own (counted) when there are none for
// want of an answer.
func (c *Committer) withIDs(numbered, cols *arrow.Schema, failed bool) *arrow.Schema {
	if failed {
		c.cfg.Metrics.unnumbered.Inc()
		return cols
	}
	if numbered == nil {
		return cols // the table numbers none
	}
	return numbered
}

// askFieldIDs asks the catalog for a key's numbering, on a context of its own: a partition revoked meanwhile
// does not make the answer a failure for the others.
func (c *Committer) askFieldIDs(fn FieldNumbering, e *idEntry, f manifest.File, location string, cols *arrow.Schema) {
	ctx, cancel := context.WithTimeout(context.Background(), fieldIDsCall)
	got, err := fn.FieldIDs(ctx, f, location, cols)
	cancel()
	switch {
	case errors.Is(err, ErrNoFieldIDs):
		c.cfg.Log.Debug("files of this schema go without field ids", "table", f.Table, "schema_id", f.SchemaID, "error", err)
	case err != nil:
		c.cfg.Log.Warn("the table's field ids are unknown: files of this schema go without them until the catalog answers (readers use the table's name mapping)",
			"table", f.Table, "schema_id", f.SchemaID, "error", err)
	}
	c.ids.mu.Lock()
	defer c.ids.mu.Unlock()
	if err == nil || !e.ok || !e.answered {
		// A failure to refresh keeps the numbering known: ids never change for a table, only names do.
		e.cols, e.ok = got, err == nil
	}
	e.answered, e.at, e.asking, e.late = true, time.Now(), false, false
	close(e.wake)
}
