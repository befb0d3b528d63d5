package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/sinks/fs"
	_ "github.com/minipipe/minipipe/sinks/hdfs" // hdfs:// warehouses
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/sinks/iceberg"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// metastore is the commit stage's catalog on a Hive Metastore: the table of each change is resolved by
// generation (a replay's generation is registered when it is swapped in).
type metastore struct {
	hc *hive.Catalog
	ic *iceberg.Catalog // --table-format iceberg: the tables are Iceberg tables in the metastore
	wh fs.FS

	mu   sync.Mutex
	gens map[string]genEntry

	// --compact-complete: complete partitions to compact, one at a time, beside the commit stage.
	compactQ    chan completePartition
	stopCompact context.CancelFunc
	compactDone chan struct{}
	log         *slog.Logger
}

type completePartition struct {
	table      string
	gen        int
	partitions [][2]string
}

type genEntry struct {
	gen int
	at  time.Time
}

// newMetastore connects the configured catalog; nil when there is none.
func newMetastore(cfg Config, wh fs.FS, log *slog.Logger, hidden func(table string) (transform, source string)) (*metastore, error) {
	rest := cfg.TableFormat == "iceberg" && cfg.IcebergCatalog == "rest"
	if cfg.Catalog != "hive" && !rest {
		return nil, nil
	}
	m := &metastore{wh: wh, gens: map[string]genEntry{}, log: log}
	if cfg.TableFormat == "iceberg" {
		icfg, err := IcebergConfig(cfg, wh, log)
		if err != nil {
			return nil, err
		}
		icfg.Generation, icfg.Hidden = m.generation, hidden
		ic, err := iceberg.New(icfg)
		if err != nil {
			return nil, err
		}
		m.ic = ic
		if cfg.CompactComplete {
			m.startCompactor()
		}
		return m, nil
	}
	hc, err := hive.New(hive.Config{URI: cfg.HiveMetastore, Database: cfg.HiveDatabase, DatabaseLocation: wh.URI("."),
		Generation: m.generation, Log: log})
	if err != nil {
		return nil, err
	}
	m.hc = hc
	return m, nil
}

// IcebergConfig is the Iceberg catalog's configuration: the metastore's, or the REST catalog's.
func IcebergConfig(cfg Config, wh fs.FS, log *slog.Logger) (iceberg.Config, error) {
	ic := iceberg.Config{Metastore: cfg.HiveMetastore, Database: cfg.HiveDatabase, FS: wh, HiveLocks: cfg.IcebergHiveLocks, Log: log}
	if cfg.IcebergCatalog == "rest" {
		cred, err := cfg.IcebergRESTCredential()
		if err != nil {
			return ic, err
		}
		ic.Metastore, ic.HiveLocks = "", false
		ic.REST, ic.RESTWarehouse, ic.RESTCredential, ic.RESTToken = cfg.IcebergRESTURI, cfg.IcebergRESTWarehouse, cred.ClientCredentials, cred.Token
	}
	return ic, nil
}

// generation is a table's current generation, read from the warehouse at most every two seconds.
func (m *metastore) generation(table string) (int, error) {
	m.mu.Lock()
	e, ok := m.gens[table]
	m.mu.Unlock()
	if ok && time.Since(e.at) < 2*time.Second {
		return e.gen, nil
	}
	g, err := CurrentGeneration(m.wh, table)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.gens[table] = genEntry{g, time.Now()}
	m.mu.Unlock()
	return g, nil
}

func (m *metastore) Changes(f manifest.File, location string, cols *arrow.Schema, newPartition, newSchema bool) []manifest.CatalogChange {
	if m.ic != nil {
		return m.ic.Changes(f, location, cols, newPartition, newSchema)
	}
	return m.hc.Changes(f.Table, f.Generation, location, f.Partitions, cols, f.SchemaID, newPartition, newSchema)
}

// FieldIDs numbers the columns of an Iceberg table's files (commit.FieldNumbering); a Hive table's go
// without ids.
func (m *metastore) FieldIDs(ctx context.Context, f manifest.File, location string, cols *arrow.Schema) (*arrow.Schema, error) {
	if m.ic == nil {
		return nil, nil
	}
	cur, err := m.generation(f.Table)
	if err != nil {
		return nil, err
	}
	if f.Generation != cur {
		return nil, fmt.Errorf("table %s: generation %d is not swapped in yet (%d is): %w", f.Table, f.Generation, cur, commit.ErrNoFieldIDs)
	}
	return m.ic.FieldIDs(ctx, f, location, cols)
}

func (m *metastore) Apply(ctx context.Context, changes []manifest.CatalogChange) error {
	if m.ic != nil {
		return m.ic.Apply(ctx, changes)
	}
	return m.hc.Apply(ctx, changes)
}

func (m *metastore) Reconcile(ctx context.Context, t commit.CatalogTable) error {
	cur, err := m.generation(t.Table)
	if err != nil {
		return err
	}
	if t.Generation != cur {
		return nil
	}
	if m.ic != nil {
		return m.ic.Reconcile(ctx, t.Table, t.Generation, t.Location, t.Cols, t.PartitionColumns)
	}
	tp := tablePartitions(t.Table, t.Generation, t.Location, t.PartitionColumns, t.Partitions, hive.HiveColumns(t.Cols), t.SchemaID)
	for i, d := range t.Dirs {
		if d != "" && i < len(tp.Locations) {
			if tp.Canonical == nil {
				tp.Canonical = make([]string, len(tp.Locations))
			}
			tp.Canonical[i], tp.Locations[i] = tp.Locations[i], d // compacted
		}
	}
	return m.hc.Reconcile(ctx, tp)
}

func (m *metastore) Relocate(table string, gen int, partitions [][2]string, location, from string) ([]manifest.CatalogChange, error) {
	if m.ic != nil {
		return nil, fmt.Errorf("%s is an Iceberg table: minipipe compact --table-format iceberg rewrites it in a snapshot of its own", table)
	}
	return []manifest.CatalogChange{m.hc.RelocateChange(table, gen, partitions, location, from)}, nil
}

func tablePartitions(table string, gen int, location string, keys []string, parts [][][2]string, cols []hive.Column, schemaID int) hive.TablePartitions {
	tp := hive.TablePartitions{Table: table, Generation: gen, Location: location, Columns: cols, SchemaID: schemaID, PartitionKeys: keys}
	for _, p := range parts {
		vals := make([]string, len(p))
		for i, kv := range p {
			vals[i] = kv[1]
		}
		tp.Partitions = append(tp.Partitions, vals)
		tp.Locations = append(tp.Locations, strings.TrimSuffix(location, "/")+"/"+layout.Path(p))
	}
	return tp
}

func (m *metastore) MarkComplete(ctx context.Context, table string, gen int, partitions [][2]string) error {
	cur, err := m.generation(table)
	if err != nil {
		return err
	}
	if gen != cur {
		return nil // a generation being built by a replay: the metastore shows another
	}
	if m.ic != nil {
		return nil // Iceberg tables have no partitions of their own to mark (the snapshots tell)
	}
	vals := make([]string, len(partitions))
	for i, kv := range partitions {
		vals[i] = kv[1]
	}
	return m.hc.MarkComplete(ctx, table, vals)
}

// maxQueuedCompactions bounds the complete partitions waiting for their compaction; past it they are left
// to minipipe compact.
const maxQueuedCompactions = 1024

// compactTimeout bounds one partition's automatic compaction.
var compactTimeout = 30 * time.Minute

func (m *metastore) startCompactor() {
	ctx, cancel := context.WithCancel(context.Background())
	m.compactQ, m.stopCompact, m.compactDone = make(chan completePartition, maxQueuedCompactions), cancel, make(chan struct{})
	go func() {
		defer close(m.compactDone)
		for {
			select {
			case <-ctx.Done():
				return
			case cp := <-m.compactQ:
				m.compactPartition(ctx, cp)
			}
		}
	}()
}

// CompactComplete queues a partition just marked complete for its compaction (commit.PartitionCompactor).
// The queue is the instance's: a partition whose compaction a crash or a rebalance lost keeps its files
// until minipipe compact.
func (m *metastore) CompactComplete(table string, gen int, partitions [][2]string) {
	if m.compactQ == nil {
		return
	}
	select {
	case m.compactQ <- completePartition{table, gen, partitions}:
	default:
		m.log.Warn("too many complete partitions wait for their compaction; this one is left to minipipe compact", "table", table, "partition", partitionPath(partitions))
	}
}

func (m *metastore) compactPartition(ctx context.Context, cp completePartition) {
	path := partitionPath(cp.partitions)
	if cur, err := m.generation(cp.table); err != nil || cur != cp.gen {
		return // a replay's generation (or the warehouse unreadable): not the table's files
	}
	ctx, cancel := context.WithTimeout(ctx, compactTimeout)
	defer cancel()
	start := time.Now()
	res, err := m.ic.Compact(ctx, cp.table, iceberg.CompactOptions{Partition: path})
	if err != nil {
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			m.log.Warn("compacting a complete partition failed; it keeps its files (run minipipe compact)", "table", cp.table, "partition", path, "error", err)
		}
		return
	}
	m.log.Info("compacted a complete partition", "table", cp.table, "partition", path, "files_before", res.FilesBefore, "files_after", res.FilesAfter,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "skipped", res.Skipped, "snapshot", res.Snapshot, "took", time.Since(start).Round(time.Millisecond))
}

// partitionPath is a partition's path: dt=…/hr=….
func partitionPath(partitions [][2]string) string {
	parts := make([]string, len(partitions))
	for i, kv := range partitions {
		parts[i] = kv[0] + "=" + kv[1]
	}
	return strings.Join(parts, "/")
}

func (m *metastore) Close() error {
	if m.stopCompact != nil {
		m.stopCompact()
		<-m.compactDone
	}
	if m.ic != nil {
		return m.ic.Close()
	}
	return m.hc.Close()
}

// swapMetastore points the metastore's table at a generation a replay swapped in: its location, and
// exactly the partitions that generation has committed.
func swapMetastore(ctx context.Context, cfg Config, wh fs.FS, table string, gen int, log *slog.Logger) error {
	if cfg.Catalog != "hive" {
		return nil
	}
	hc, err := hive.New(hive.Config{URI: cfg.HiveMetastore, Database: cfg.HiveDatabase, DatabaseLocation: wh.URI("."), Log: log})
	if err != nil {
		return err
	}
	defer hc.Close()
	states, err := keyStates(wh)
	if err != nil {
		return err
	}
	var parts [][][2]string
	var keys []string
	for _, k := range states {
		if k.Table != table || k.Generation != gen || len(k.Partitions) == 0 {
			continue
		}
		parts = append(parts, k.Partitions)
		if keys == nil {
			for _, kv := range k.Partitions {
				keys = append(keys, kv[0])
			}
		}
	}
	tp := tablePartitions(table, gen, wh.URI(commit.Location(table, gen)), keys, parts, nil, 0)
	tp.Complete = true
	for attempt := 1; ; attempt++ {
		err := hc.Reconcile(ctx, tp)
		if err == nil {
			return nil
		}
		if attempt == 10 || ctx.Err() != nil {
			return fmt.Errorf("updating the metastore table %s.%s: %w", cfg.HiveDatabase, table, err)
		}
		log.Warn("the metastore did not take the swap yet; retrying", "table", table, "error", err)
		time.Sleep(time.Duration(attempt) * time.Second)
	}
}
