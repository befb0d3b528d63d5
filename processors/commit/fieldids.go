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

// How long a table's numbering of a schema's columns is used before it is asked again (another engine may
// have renamed or dropped a column), and how long a failure to get it leaves files without ids.
var (
	fieldIDsFresh  = 2 * time.Minute
	fieldIDsRetry  = time.Minute
	fieldIDsBudget = 15 * time.Second // the longest a file's first row waits for its numbering
)

type idKey struct {
	table         string
	gen, schemaID int
}

type idEntry struct {
	done chan struct{} // closed once cols and ok are set
	cols *arrow.Schema // numbered; nil: none
	ok   bool
	at   time.Time
}

// fieldIDs caches the numbering of each table generation's schemas, asking the catalog once for all the
// commit partitions of the instance.
type fieldIDs struct {
	mu sync.Mutex
	m  map[idKey]*idEntry
}

// numbered returns cols numbered for the file of f at location, or cols as they are when the catalog numbers
// none or cannot now (the file then goes without ids: readers use the table's name mapping).
func (c *Committer) numbered(ctx context.Context, f manifest.File, location string, cols *arrow.Schema) *arrow.Schema {
	fn, ok := c.cfg.Catalog.(FieldNumbering)
	if !ok {
		return cols
	}
	k := idKey{f.Table, f.Generation, f.SchemaID}
	c.ids.mu.Lock()
	if c.ids.m == nil {
		c.ids.m = map[idKey]*idEntry{}
	}
	e := c.ids.m[k]
	stale := false
	if e != nil {
		select {
		case <-e.done:
			life := fieldIDsFresh
			if !e.ok {
				life = fieldIDsRetry
			}
			stale = time.Since(e.at) > life
		default:
		}
	}
	owner := e == nil || stale
	if owner {
		e = &idEntry{done: make(chan struct{})}
		c.ids.m[k] = e
	}
	c.ids.mu.Unlock()
	if owner {
		rctx, cancel := context.WithTimeout(ctx, fieldIDsBudget)
		got, err := fn.FieldIDs(rctx, f, location, cols)
		cancel()
		e.cols, e.ok, e.at = got, err == nil, time.Now()
		close(e.done)
		if errors.Is(err, ErrNoFieldIDs) {
			c.cfg.Log.Debug("files of this schema go without field ids", "table", f.Table, "schema_id", f.SchemaID, "error", err)
		} else if err != nil {
			c.cfg.Log.Warn("the table's field ids are unknown: files of this schema go without them until the catalog answers (readers use the table's name mapping)",
				"table", f.Table, "schema_id", f.SchemaID, "error", err)
		}
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return c.unnumbered(cols)
	}
	if !e.ok {
		return c.unnumbered(cols)
	}
	if e.cols == nil {
		return cols
	}
	return e.cols
}

func (c *Committer) unnumbered(cols *arrow.Schema) *arrow.Schema {
	c.cfg.Metrics.unnumbered.Inc()
	return cols
}
