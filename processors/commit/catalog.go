package commit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// applyCatalog runs beside a partition's commits: after recovery it reconciles the metastore with what
// the partition has committed, then applies the catalog changes of committed intents in commit order,
// retrying with backoff until each succeeds, and records them Applied in the manifest. Data commits never
// wait for it: a metastore outage only makes the queue of unapplied changes grow (the manifest keeps it
// across restarts), and the table catches up when the metastore returns.
func (p *partWriter) applyCatalog(ctx context.Context) {
	c := p.c
	pid := strconv.Itoa(int(p.id))
	defer c.cfg.Metrics.catalogPending.DeleteLabelValues(pid)
	backoff := 250 * time.Millisecond
	reconciled := false
	failures := 0
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-p.catalogWake:
			return true
		case <-time.After(d):
			return true
		}
	}
	fail := func(what string, err error) bool {
		failures++
		c.cfg.Metrics.catalogErrors.Inc()
		if failures == 1 || failures%20 == 0 {
			c.cfg.Log.Warn("the metastore is behind the warehouse; retrying (data commits go on)", "partition", p.id, "step", what, "attempts", failures, "error", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.cfg.CatalogRetry)
		return true
	}
	for {
		p.mu.Lock()
		ready, fatal := p.ready, p.fatal
		var refs []uint64
		var changes []manifest.CatalogChange
		var tables []CatalogTable
		if ready && fatal == nil {
			if !reconciled {
				tables = p.catalogTables()
			}
			stream := c.cfg.RowsTopic + "." + pid
			for _, ref := range p.st.Unapplied {
				if len(refs) == 64 {
					break
				}
				refs = append(refs, ref)
				for _, ch := range p.st.Catalog[ref] {
					ch.Seq, ch.Stream = ref, stream
					changes = append(changes, ch)
				}
			}
			c.cfg.Metrics.catalogPending.WithLabelValues(pid).Set(float64(len(p.st.Unapplied)))
		}
		p.mu.Unlock()
		if fatal != nil {
			return
		}
		if !ready {
			if !wait(100 * time.Millisecond) {
				return
			}
			continue
		}
		if !reconciled {
			if err := p.reconcile(ctx, tables); err != nil {
				if !fail("reconcile", err) {
					return
				}
				continue
			}
			reconciled = true
		}
		if len(refs) == 0 {
			// Partitions marked complete, once every catalog change before them is applied (their
			// partitions are registered).
			p.mu.Lock()
			completions := len(p.completeQ)
			p.mu.Unlock()
			if completions > 0 {
				if err := p.applyCompletions(ctx); err != nil {
					if !fail("mark complete", err) {
						return
					}
					continue
				}
			}
			if failures > 0 {
				c.cfg.Log.Info("the metastore has caught up", "partition", p.id)
				failures = 0
			}
			backoff = 250 * time.Millisecond
			if !wait(time.Minute) {
				return
			}
			continue
		}
		if err := c.cfg.Catalog.Apply(ctx, changes); err != nil {
			if !fail("apply", err) {
				return
			}
			continue
		}
		c.cfg.Failpoint("catalog.applied")
		p.mu.Lock()
		if p.fatal == nil && ctx.Err() == nil {
			r := &manifest.Record{Kind: manifest.Applied, Epoch: p.epoch, Owner: c.cfg.Instance, Ref: refs[0], Refs: refs[1:]}
			if err := p.log.Append(r); err != nil {
				// Fenced or the warehouse failed: the changes are applied again by whoever recovers; they
				// are idempotent.
				p.mu.Unlock()
				if !fail("record", err) {
					return
				}
				continue
			}
			p.st.Apply(r)
			c.cfg.Metrics.catalogApplied.Add(float64(len(changes)))
		}
		p.mu.Unlock()
		backoff = 250 * time.Millisecond
	}
}

// catalogTables groups the partition's committed keys by table generation (called with p.mu held).
func (p *partWriter) catalogTables() []CatalogTable {
	type tg struct {
		table string
		gen   int
	}
	by := map[tg]*CatalogTable{}
	var order []tg
	for _, k := range p.st.Keys {
		id := tg{k.Table, k.Generation}
		t := by[id]
		if t == nil {
			t = &CatalogTable{Table: k.Table, Generation: k.Generation, Location: p.c.cfg.FS.URI(Location(k.Table, k.Generation))}
			by[id] = t
			order = append(order, id)
		}
		if len(k.Partitions) > 0 {
			t.Partitions = append(t.Partitions, k.Partitions)
			dir := ""
			if k.Dir != "" {
				dir = p.c.cfg.FS.URI(k.Dir)
			}
			t.Dirs = append(t.Dirs, dir)
			if t.PartitionColumns == nil {
				for _, kv := range k.Partitions {
					t.PartitionColumns = append(t.PartitionColumns, kv[0])
				}
			}
		}
		for _, sid := range k.SchemaIDs {
			if sid > t.SchemaID {
				t.SchemaID = sid
			}
		}
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].table != order[j].table {
			return order[i].table < order[j].table
		}
		return order[i].gen < order[j].gen
	})
	out := make([]CatalogTable, 0, len(order))
	for _, id := range order {
		out = append(out, *by[id])
	}
	return out
}

// reconcile makes the metastore show every table generation this partition has committed to.
func (p *partWriter) reconcile(ctx context.Context, tables []CatalogTable) error {
	c := p.c
	for _, t := range tables {
		schema, err := c.schema(ctx, t.SchemaID)
		if err != nil {
			return fmt.Errorf("schema %d of %s: %w", t.SchemaID, t.Table, err)
		}
		tbl := c.cfg.Tables(t.Table)
		drop := map[string]bool{}
		for _, col := range tbl.FieldColumns() {
			drop[col] = true
		}
		if t.Cols, err = parquet.ArrowSchema(schema, drop); err != nil {
			return fmt.Errorf("schema %d of %s: %w", t.SchemaID, t.Table, err)
		}
		if err := c.cfg.Catalog.Reconcile(ctx, t); err != nil {
			return err
		}
	}
	return nil
}
