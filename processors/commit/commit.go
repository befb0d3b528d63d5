// Package commit is the last stage of the topology: a goka processor on the repartition topic that writes
// each table partition's rows into Parquet files and commits them exactly once through the write-ahead
// manifest (sinks/manifest). A file holds the rows of one table partition from one source partition; where
// it ends is decided upstream by the bucket step and arrives in the stream as a seal on a batch, so a redo
// after a crash cuts the same files. This stage only ends a file on its own when it must: a row its schema
// cannot read, too many open files, the open files holding more memory than the budget, or the partition
// moving away (minipipe_commit_unplanned_ends_total).
// Input is acknowledged, per partition in offset order, only once the file holding it is committed.
package commit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/acks"
	"github.com/minipipe/minipipe/processors/dlq"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/processors/workers"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// Schemas resolves schema ids.
type Schemas interface {
	Schema(id int) (*avro.Schema, error)
}

// Catalog receives the metastore changes of committed files (Hive); nil means no catalog.
type Catalog interface {
	// Changes returns the catalog changes committing file f (its columns cols, its table generation at
	// location) needs; newPartition and newSchema say whether its table partition, or its schema in it,
	// has no committed file yet.
	Changes(f manifest.File, location string, cols *arrow.Schema, newPartition, newSchema bool) []manifest.CatalogChange
	// Relocate returns the changes that point a table partition at a new directory (a compaction's, at
	// location) from the one at from, or an error saying why this catalog cannot (an Iceberg table: compact
	// rewrites those).
	Relocate(table string, gen int, partitions [][2]string, location, from string) ([]manifest.CatalogChange, error)
	// Apply applies changes idempotently, in order. Each carries the Seq of its intent and the Stream of
	// its manifest.
	Apply(ctx context.Context, changes []manifest.CatalogChange) error
	// Reconcile makes the metastore show a table's committed partitions (those this partition of the
	// commit stage owns), run after every recovery.
	Reconcile(ctx context.Context, t CatalogTable) error
	// MarkComplete sets the partition parameter minipipe.complete=true (idempotent).
	MarkComplete(ctx context.Context, table string, gen int, partitions [][2]string) error
}

// CatalogTable is what a commit partition has committed of one table generation.
type CatalogTable struct {
	Table      string
	Generation int
	Location   string // the generation's location URI
	Cols       *arrow.Schema
	SchemaID   int
	// Partitions are the partition values of each committed table partition; Dirs their directories' URIs
	// where a compaction moved them (else empty: the partition's path under Location).
	Partitions [][][2]string
	Dirs       []string
	// PartitionColumns in order (may be set when Partitions is empty).
	PartitionColumns []string
}

// Config configures the commit stage.
type Config struct {
	Group     string
	RowsTopic string
	FS        fs.FS
	Tables    func(name string) layout.Table
	Schemas   Schemas
	Producer  *kgo.Client // produces dead letters
	Instance  string
	// Cluster and Pipeline are recorded in every claim of a commit partition.
	Cluster  string
	Pipeline string
	Parquet  parquet.Options
	// MaxOpenFiles per partition (a file per table partition and source partition); past it the least
	// recently written file is committed (default 256).
	MaxOpenFiles int
	// WriteBudget is the memory all open files of the instance may buffer (parquet.Writer.Buffered): past
	// it, a partition holding more than its share commits its largest files early. 0: no budget.
	WriteBudget int64
	// CompactEvery commits a checkpoint every so many commits (default 64).
	CompactEvery int
	// Failpoint is called at each step of the protocol with its name (crash tests kill the process there).
	Failpoint func(step string)
	Catalog   Catalog
	// CatalogRetry is the longest pause between attempts to apply catalog changes (default 30s).
	CatalogRetry time.Duration
	// AllowedLateness > 0 marks daily and hourly partitions complete once every source partition's
	// watermark has passed their end by it (see complete.go).
	AllowedLateness time.Duration
	Metrics         *Metrics
	Log             *slog.Logger
}

// Location is the directory of a table's generation in the warehouse (layout.Location).
func Location(table string, gen int) string { return layout.Location(table, gen) }

// ManifestDir is the manifest directory of a repartition partition.
func ManifestDir(rowsTopic string, partition int32) string {
	return fs.Join("_minipipe", "manifests", rowsTopic, strconv.Itoa(int(partition)))
}

// StagingDir is the staging directory of a repartition partition; it starts with '_', which query engines
// skip, and lies outside every table. Each owner writes in a directory of its own under it (ownerDir),
// made before its claim and removed by the next owner's recovery.
func StagingDir(rowsTopic string, partition int32) string {
	return fs.Join("_minipipe", "staging", rowsTopic, strconv.Itoa(int(partition)))
}

// ownerDir is the name of an owner's staging directory: its epoch, zero-padded, and a nonce.
func ownerDir(epoch uint64, nonce string) string { return fmt.Sprintf("%020d-%s", epoch, nonce) }

// ownerEpoch is the epoch of an owner's staging directory name (ok false for anything else).
func ownerEpoch(name string) (uint64, bool) {
	i := strings.IndexByte(name, '-')
	if i != 20 {
		return 0, false
	}
	e, err := strconv.ParseUint(name[:i], 10, 64)
	return e, err == nil
}

// Committer is the commit stage.
type Committer struct {
	cfg   Config
	parts workers.Set[*partWriter]

	schemaMu sync.Mutex
	schemas  map[int]*avro.Schema

	memMu sync.Mutex
	mem   map[*partWriter]int64 // the open files' memory, by commit partition's assignment

	compacting chan struct{} // one compaction at a time (see compact)

	ids fieldIDs
}

// New prepares the commit stage.
func New(cfg Config) *Committer {
	if cfg.MaxOpenFiles <= 0 {
		cfg.MaxOpenFiles = 256
	}
	if cfg.CompactEvery <= 0 {
		cfg.CompactEvery = 64
	}
	if cfg.CatalogRetry <= 0 {
		cfg.CatalogRetry = 30 * time.Second
	}
	if cfg.Failpoint == nil {
		cfg.Failpoint = func(string) {}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Log = cfg.Log.With("component", "commit")
	if cfg.Parquet.Encodings == nil {
		cfg.Parquet.Encodings = parquet.NewEncodings()
	}
	return &Committer{cfg: cfg, schemas: map[int]*avro.Schema{}, mem: map[*partWriter]int64{}, compacting: make(chan struct{}, 1)}
}

// Process is the goka callback of the repartition topic.
func (c *Committer) Process(ctx goka.Context, msg interface{}) { c.process(ctx, msg) }

func (c *Committer) schema(ctx context.Context, id int) (*avro.Schema, error) {
	c.schemaMu.Lock()
	s, ok := c.schemas[id]
	c.schemaMu.Unlock()
	if ok {
		return s, nil
	}
	for attempt := 0; ; attempt++ {
		s, err := c.cfg.Schemas.Schema(id)
		if err == nil {
			c.schemaMu.Lock()
			c.schemas[id] = s
			c.schemaMu.Unlock()
			return s, nil
		}
		if attempt%40 == 0 {
			c.cfg.Log.Warn("waiting for the schema registry", "schema_id", id, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// partWriter is one repartition partition owned by this instance.
type partWriter struct {
	c    *Committer
	id   int32
	ctx  context.Context // goka's context of this assignment of the partition
	acks *acks.Queue

	mu      sync.Mutex
	ready   bool
	fatal   error
	log     *manifest.Log
	st      *manifest.State
	epoch   uint64
	staging string               // this owner's staging directory
	files   map[string]*openFile // by table partition key and source (fileKey)
	// holes are the records of dead-lettered rows that no file holds, by fileKey: released when the next
	// file of theirs commits.
	holes map[string][]*acks.Entry
	// seen is the highest offset of each table partition and source partition that this assignment has
	// seen (committed, in an open file, a duplicate or a dead letter): a batch whose Prev is beyond it
	// follows a lost one.
	seen    map[string]int64
	staged  int
	commits int
	// catalogWake nudges the catalog applier after a commit with catalog changes.
	catalogWake chan struct{}

	marks      map[string]*tableMarks // source partitions' watermarks, by table generation
	complete   map[string]bool        // table partitions marked complete, by key
	incomplete map[string]bool        // committed table partitions not (yet) complete, by key
	completeQ  []completion           // complete partitions the metastore does not know yet
}

type openFile struct {
	key        string // the table partition's
	fkey       string // in partWriter.files
	src        string
	table      string
	gen        int
	path       string
	partitions [][2]string
	schemaID   int
	schema     *avro.Schema
	cols       *arrow.Schema
	decoders   map[int]*parquet.Decoder
	staging    string
	file       fs.File
	w          *parquet.Writer
	id         string
	opened     time.Time
	written    time.Time
	sources    map[string]*manifest.SourceRange
	order      []string
	entries    []*acks.Entry
}

// fileKey is an open file's key: a file holds the rows of one table partition from one source partition.
func fileKey(key, src string) string { return key + "\x00" + src }

func (c *Committer) part(ctx goka.Context) *partWriter {
	pid := ctx.Partition()
	// A new assignment (or a restarted processor) starts afresh; a previous one still finishing its
	// revocation keeps its own state until it is done. A message goka hands over after this assignment's
	// writer ended its revocation goes to that same writer: a new one would claim an epoch for a partition
	// this instance no longer owns, and its acknowledgements, in a queue of their own, could commit the
	// partition's offset past a message the ended writer still holds.
	p, _ := c.parts.Get(pid, ctx.Context(), func(prev *partWriter, ended bool) (*partWriter, error) {
		if ended {
			return prev, nil
		}
		p := &partWriter{c: c, id: pid, ctx: ctx.Context(), acks: acks.NewQueue(), files: map[string]*openFile{}, holes: map[string][]*acks.Entry{},
			seen: map[string]int64{}, catalogWake: make(chan struct{}, 1), marks: map[string]*tableMarks{}, complete: map[string]bool{},
			incomplete: map[string]bool{}}
		if c.cfg.Catalog != nil {
			go p.applyCatalog(p.ctx)
		}
		return p, nil
	}, func(p *partWriter) { p.run(p.ctx) })
	return p
}

// process is the goka callback.
func (c *Committer) process(ctx goka.Context, msg interface{}) {
	p := c.part(ctx)
	e := p.acks.Push(ctx.DeferCommit())
	defer p.acks.Release(e, nil)
	value, _ := msg.([]byte)
	p.handle(ctx.Context(), value, e, ctx.Offset())
}

// handle processes one record of the repartition topic: a batch of rows or a seal marker.
func (p *partWriter) handle(ctx context.Context, value []byte, e *acks.Entry, offset int64) {
	c := p.c
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.budget(e) // after a revocation's commits
	if p.fatal != nil {
		p.acks.Fail(e, p.fatal)
		return
	}
	if ctx.Err() != nil {
		// Handed over after the revocation began: whatever it adds is committed before the call returns.
		// Even the assignment's first message may recover here: nobody gets the partition before this
		// member rejoins the group, which it does only when its messages are done; a member the group
		// evicted meanwhile is fenced by the next owner's newer epoch.
		defer p.revoked()
	}
	if !p.ready {
		if err := p.recover(ctx); err != nil {
			p.die(e, fmt.Errorf("recovering partition %d: %w", p.id, err))
			return
		}
	}
	kind, err := envelope.Kind(value)
	if errors.Is(err, envelope.ErrNewerVersion) {
		p.die(e, fmt.Errorf("partition %d, offset %d: %w", p.id, offset, err))
		return
	}
	if err != nil {
		c.cfg.Log.Error("skipping a malformed record of the repartition topic", "partition", p.id, "offset", offset, "error", err)
		return
	}
	switch kind {
	case envelope.KindSeal:
		s, err := envelope.DecodeSeal(value)
		if err != nil {
			c.cfg.Log.Error("skipping a malformed seal", "error", err)
			return
		}
		for _, f := range p.files {
			if f.key == s.Key && f.id == s.FileID {
				if err := p.commit(f); err != nil {
					p.die(e, err)
				}
				break
			}
		}
	case envelope.KindWatermark:
		w, err := envelope.DecodeWatermark(value)
		if err != nil {
			c.cfg.Log.Error("skipping a malformed watermark", "partition", p.id, "offset", offset, "error", err)
			return
		}
		if err := p.watermark(w); err != nil {
			p.die(e, err)
		}
	case envelope.KindCompact:
		r, err := envelope.DecodeCompact(value)
		if err != nil {
			c.cfg.Log.Error("skipping a malformed compaction request", "partition", p.id, "offset", offset, "error", err)
			return
		}
		if err := p.compact(ctx, r); err != nil {
			p.die(e, err)
		}
	case envelope.KindRows:
		b, err := envelope.DecodeBatch(value)
		if err != nil {
			c.cfg.Log.Error("skipping a malformed batch", "partition", p.id, "offset", offset, "error", err)
			return
		}
		if err := p.add(ctx, b, e); err != nil {
			p.die(e, err)
		}
	}
}

// account records the memory of this partition's open files (with p.mu held) and returns it, its largest
// file, the instance's total and how many partitions hold open files. Partitions are counted by their
// writer, not their number: an assignment still ending and the next one of the same partition both count.
func (p *partWriter) account() (mine int64, largest *openFile, total int64, holders int) {
	var most int64
	for _, f := range p.files {
		n := f.w.Buffered()
		if b, ok := f.file.(interface{ Buffered() int64 }); ok {
			n += b.Buffered() // what the file system holds before it writes (an S3 upload's part)
		}
		mine += n
		if largest == nil || n > most {
			largest, most = f, n
		}
	}
	c := p.c
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if mine > 0 {
		c.mem[p] = mine
	} else {
		delete(c.mem, p)
	}
	for _, m := range c.mem {
		total += m
	}
	c.cfg.Metrics.buffered.Set(float64(total))
	return mine, largest, total, len(c.mem)
}

// budget keeps the open files of the instance within the write budget (with p.mu held): when they hold
// more, this partition, if it holds more than an equal share, commits its largest files until it does not.
// A backlog spread over many table partitions (or a long rotate interval) then makes smaller files, not more
// memory. Every partition holding files meets the check on its next record, and every second (an idle
// partition holding large files too). A file is not ended early while it holds less than minEarlyBytes,
// unless its partition holds twice its share: a budget split many ways does not cut files of a few rows.
// e is the record being handled (nil from the clock).
func (p *partWriter) budget(e *acks.Entry) {
	c := p.c
	for {
		mine, largest, total, holders := p.account()
		if c.cfg.WriteBudget <= 0 || p.fatal != nil || largest == nil || total <= c.cfg.WriteBudget {
			return
		}
		share := c.cfg.WriteBudget / int64(max(holders, 1))
		if mine <= share || largest.w.Buffered() < minEarlyBytes && mine <= 2*share {
			return
		}
		c.cfg.Metrics.unplanned.WithLabelValues("memory").Inc()
		c.cfg.Log.Debug("the open files hold more than the write budget: committing the largest early", "partition", p.id,
			"file", largest.staging, "partition_bytes", mine, "instance_bytes", total, "budget", c.cfg.WriteBudget)
		if err := p.commit(largest); err != nil {
			p.die(e, err)
		}
	}
}

// minEarlyBytes is the least a file holds before the write budget ends it early (see budget).
const minEarlyBytes = 4 << 20

// die stops the partition: the error goes to goka, which stops the processor; every message not
// committed is redelivered to whoever takes the partition next.
func (p *partWriter) die(e *acks.Entry, err error) {
	p.c.cfg.Log.Error("commit partition failed; the processor restarts and redoes what was not committed", "partition", p.id, "error", err)
	p.fatal = err
	for _, f := range p.files {
		f.w.Abort()
		_ = fs.Abandon(f.file)
	}
	p.files = map[string]*openFile{}
	if e != nil {
		p.acks.Fail(e, err)
	}
	go p.acks.FailAll(err)
}

// add writes a batch's rows into the open file of its table partition. Rows already committed (or already
// in the open file) are dropped as duplicates; a batch whose Prev link points past what this partition has
// seen of its source comes after one that was lost (its produce failed): it is dropped, and the ingest stage
// sends both again. A row the file cannot take becomes a dead letter.
func (p *partWriter) add(ctx context.Context, b *envelope.Batch, e *acks.Entry) error {
	c := p.c
	key := envelope.Key(b.Table, b.Generation, b.Path)
	src := b.Source.String()
	tbl := c.cfg.Tables(b.Table)
	hwm := p.st.HWM(key, src)
	seenKey := fileKey(key, src)
	seen, ok := p.seen[seenKey]
	if !ok || seen < hwm {
		seen = hwm
	}
	if b.Prev > seen {
		c.cfg.Metrics.gaps.Inc()
		c.cfg.Log.Debug("dropping a batch sent after one that was lost; the ingest stage sends both again", "key", key, "source", src, "prev", b.Prev, "seen", seen)
		return nil
	}
	if n := len(b.Rows); n > 0 && b.Rows[n-1].Offset > seen {
		p.seen[seenKey] = b.Rows[n-1].Offset
	}
	for i := range b.Rows {
		row := &b.Rows[i]
		if row.Offset <= hwm {
			c.cfg.Metrics.duplicates.Inc()
			continue
		}
		f := p.files[seenKey]
		if f != nil {
			if r := f.sources[src]; r != nil && row.Offset <= r.Last {
				c.cfg.Metrics.duplicates.Inc()
				continue
			}
		}
		schema, err := c.schema(ctx, row.SchemaID)
		if err != nil {
			return fmt.Errorf("schema %d: %w", row.SchemaID, err)
		}
		var dec *parquet.Decoder
		if f != nil {
			// A newer schema starts a new file; an older one is read into the open file when the file's
			// schema can read it (schema resolution), and starts a new file otherwise.
			if row.SchemaID == f.schemaID || row.SchemaID < f.schemaID && avro.Compatible(f.schema, schema) {
				dec, _ = f.decoder(schema, row.SchemaID)
			}
			if dec == nil {
				c.cfg.Metrics.unplanned.WithLabelValues("schema").Inc()
				if err := p.commit(f); err != nil {
					return err
				}
				f = nil
				hwm = p.st.HWM(key, src)
			}
		}
		if f == nil {
			if f, err = p.open(key, src, b, schema, row.SchemaID, row.Offset, tbl); err != nil {
				var rowErr *parquet.RowError
				if errors.As(err, &rowErr) {
					if err := p.deadRow(b, row, err, seenKey, src, e); err != nil {
						return err
					}
					continue
				}
				return err
			}
			if dec, err = f.decoder(schema, row.SchemaID); err != nil {
				p.discard(f)
				if err := p.deadRow(b, row, err, seenKey, src, e); err != nil {
					return err
				}
				continue
			}
		}
		if err := f.w.Append(dec, row.Payload); err != nil {
			var rowErr *parquet.RowError
			if errors.As(err, &rowErr) {
				// Validation should have refused it: the writer's refusal is final, and the row goes to the
				// dead-letter topic instead of stopping the partition.
				if err := p.deadRow(b, row, err, seenKey, src, e); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("writing %s: %w", f.staging, err)
		}
		f.written = time.Now()
		if p.complete[key] {
			c.cfg.Metrics.afterComplete.Inc()
		}
		r := f.sources[src]
		if r == nil {
			r = &manifest.SourceRange{Source: src, First: row.Offset}
			f.sources[src] = r
			f.order = append(f.order, src)
			// Dead letters before this row, in no file: this file's commit moves the mark past them.
			f.entries = append(f.entries, p.holes[seenKey]...)
			delete(p.holes, seenKey)
		}
		r.Last = row.Offset
		r.Count++
		if n := len(f.entries); n == 0 || f.entries[n-1] != e {
			p.acks.Hold(e)
			f.entries = append(f.entries, e)
		}
	}
	// The bucket step's seal ends the file with the row at SealAt. A file that already holds rows past it
	// meets a seal of a redo (a duplicate batch): its own seal comes later in the stream.
	if b.Seal {
		f := p.files[seenKey]
		if f == nil {
			c.cfg.Log.Debug("a seal with no file open", "key", key, "source", src, "seal_at", b.SealAt, "prev", b.Prev)
		} else if r := f.sources[src]; r == nil || r.Last <= b.SealAt {
			if err := p.commit(f); err != nil {
				return err
			}
		} else {
			c.cfg.Log.Debug("a seal of a redo: the file holds rows past it", "key", key, "source", src, "seal_at", b.SealAt, "last", r.Last)
		}
	}
	return nil
}

// deadRow sends a row to the dead-letter topic and keeps the high-water mark able to pass it: the open file
// of its table partition and source takes its offset into its range (its commit moves the mark past it);
// with no row of that source open, its record is held until the next file of it commits. Otherwise a batch
// linked to the dead row would look, to an owner after a move, like one following a lost batch, and be
// dropped for good.
func (p *partWriter) deadRow(b *envelope.Batch, row *envelope.Row, cause error, fk, src string, e *acks.Entry) error {
	if err := p.deadLetter(b, row, cause); err != nil {
		return err
	}
	if f := p.files[fk]; f != nil {
		if r := f.sources[src]; r != nil {
			r.Last = max(r.Last, row.Offset)
			return nil
		}
	}
	p.acks.Hold(e)
	p.holes[fk] = append(p.holes[fk], e)
	return nil
}

// deadLetter sends a row the commit stage cannot write to its source topic's dead-letter topic (as the
// source record was: Confluent framing and the Avro payload), and returns once it is there: the rows after
// it may commit, and a redo after that would drop it as below the high-water mark. It is rare, so it waits
// (an error, when the partition goes away first, stops the partition: the row is redone).
func (p *partWriter) deadLetter(b *envelope.Batch, row *envelope.Row, cause error) error {
	c := p.c
	c.cfg.Metrics.deadLetters.Inc()
	c.cfg.Log.Error("a row the writer cannot take goes to the dead-letter topic", "table", b.Table, "source", b.Source.String(), "offset", row.Offset, "error", cause)
	value := avro.AppendWireHeader(make([]byte, 0, avro.WireHeaderSize+len(row.Payload)), row.SchemaID)
	value = append(value, row.Payload...)
	rec := dlq.Record(dlq.Source{Topic: b.Source.Topic, Partition: b.Source.Partition, Offset: row.Offset, Timestamp: row.Timestamp}, value,
		dlq.CodeUnwritable, cause.Error())
	return dlq.Produce(p.ctx, c.cfg.Producer, rec, 0, c.cfg.Log)
}

func (f *openFile) decoder(s *avro.Schema, id int) (*parquet.Decoder, error) {
	if d := f.decoders[id]; d != nil {
		return d, nil
	}
	d, err := parquet.NewDecoder(s, f.schema, f.cols)
	if err != nil {
		return nil, fmt.Errorf("schema %d into the file of schema %d: %w", id, f.schemaID, err)
	}
	f.decoders[id] = d
	return d, nil
}

func (p *partWriter) open(key, src string, b *envelope.Batch, schema *avro.Schema, schemaID int, first int64, tbl layout.Table) (*openFile, error) {
	c := p.c
	if len(p.files) >= c.cfg.MaxOpenFiles {
		var lru *openFile
		for _, f := range p.files {
			if lru == nil || f.written.Before(lru.written) {
				lru = f
			}
		}
		c.cfg.Metrics.unplanned.WithLabelValues("open-files").Inc()
		if err := p.commit(lru); err != nil {
			return nil, err
		}
	}
	drop := map[string]bool{}
	for _, col := range tbl.FieldColumns() {
		drop[col] = true
	}
	cols, err := parquet.ArrowSchema(schema, drop)
	if err != nil {
		return nil, &parquet.RowError{Err: fmt.Errorf("schema %d: %w", schemaID, err)}
	}
	if c.cfg.Catalog != nil {
		loc := c.cfg.FS.URI(Location(b.Table, b.Generation))
		cols = c.numbered(p.ctx, manifest.File{Table: b.Table, Generation: b.Generation, Partitions: b.Partitions, SchemaID: schemaID}, loc, cols)
	}
	p.staged++
	staging := fs.Join(p.staging, fmt.Sprintf("%06d.parquet", p.staged))
	file, err := c.cfg.FS.Create(staging)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The staging directory is gone: a newer owner removed it, this one lost the partition.
			return nil, fmt.Errorf("staging file %s: this instance no longer owns commit partition %d (its staging directory was removed by the owner after it): %w", staging, p.id, manifest.ErrFenced)
		}
		return nil, fmt.Errorf("staging file: %w", err)
	}
	meta := map[string]string{
		"avro.schema":        schema.Canonical(),
		"minipipe.schema_id": strconv.Itoa(schemaID),
		"minipipe.table":     b.Table,
		"minipipe.partition": b.Path,
		"minipipe.first_row": envelope.FileID(b.Source, first),
	}
	popts := c.cfg.Parquet
	popts.Table = b.Table
	w, err := parquet.NewWriter(file, cols, meta, popts)
	if err != nil {
		_ = fs.Abandon(file)
		return nil, err
	}
	now := time.Now()
	f := &openFile{key: key, fkey: fileKey(key, src), src: src, table: b.Table, gen: b.Generation, path: b.Path, partitions: b.Partitions, schemaID: schemaID, schema: schema,
		cols: cols, decoders: map[int]*parquet.Decoder{}, staging: staging, file: file, w: w, id: envelope.FileID(b.Source, first),
		opened: now, written: now, sources: map[string]*manifest.SourceRange{}}
	p.files[f.fkey] = f
	c.cfg.Metrics.open.Inc()
	return f, nil
}

// discard drops an open file (its staging file too).
func (p *partWriter) discard(f *openFile) {
	delete(p.files, f.fkey)
	p.c.cfg.Metrics.open.Dec()
	f.w.Abort()
	_ = fs.Abandon(f.file)
	_ = p.c.cfg.FS.Remove(f.staging)
}

// commit runs the commit protocol for one file: staging durable → intent → publish → committed. A file that
// got no row (its first one was a dead letter) is dropped instead.
func (p *partWriter) commit(f *openFile) error {
	c := p.c
	start := time.Now()
	if f.w.Rows() == 0 {
		p.discard(f)
		return nil
	}
	delete(p.files, f.fkey)
	c.cfg.Metrics.open.Dec()
	rows := f.w.Rows()
	if err := f.w.Close(); err != nil {
		_ = fs.Abandon(f.file)
		return fmt.Errorf("closing %s: %w", f.staging, err)
	}
	if err := f.file.Close(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("syncing %s: its staging directory is gone: this instance no longer owns commit partition %d: %w", f.staging, p.id, manifest.ErrFenced)
		}
		return fmt.Errorf("syncing %s: %w", f.staging, err)
	}
	st, err := c.cfg.FS.Stat(f.staging)
	if err != nil {
		return fmt.Errorf("staged file %s: %w", f.staging, err)
	}
	bytes := st.Size // exact: recovery tells a published file from another by its size
	c.cfg.Failpoint("commit.staged")

	location := Location(f.table, f.gen)
	final := fs.Join(location, f.path, f.id+".parquet")
	if f.path == "" {
		final = fs.Join(location, f.id+".parquet")
	}
	if ks := p.st.Keys[f.key]; ks != nil && ks.Dir != "" {
		final = fs.Join(ks.Dir, f.id+".parquet") // a compaction moved the partition
	}
	mf := manifest.File{Table: f.table, Generation: f.gen, Key: f.key, Path: f.path, Partitions: f.partitions, Staging: f.staging,
		Final: final, Rows: rows, Bytes: bytes, SchemaID: f.schemaID}
	for _, src := range f.order {
		mf.Sources = append(mf.Sources, *f.sources[src])
	}
	intent := &manifest.Record{Kind: manifest.Intent, Epoch: p.epoch, Owner: c.cfg.Instance, Files: []manifest.File{mf}}
	if c.cfg.Catalog != nil {
		ks := p.st.Keys[f.key]
		newSchema := ks == nil || !containsInt(ks.SchemaIDs, f.schemaID)
		intent.Catalog = c.cfg.Catalog.Changes(mf, c.cfg.FS.URI(location), f.cols, ks == nil, newSchema)
	}
	if err := p.log.Append(intent); err != nil {
		return err
	}
	c.cfg.Failpoint("commit.intent")
	if err := c.cfg.FS.Rename(f.staging, final); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("publishing %s: its staging file is gone: this instance no longer owns commit partition %d: %w", final, p.id, manifest.ErrFenced)
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("publishing %s: it already exists, committed by someone else: another pipeline writes table %s into this warehouse, or this pipeline's manifest under _minipipe/manifests was lost (give each --pipeline-name its own warehouse): %w", final, f.table, err)
		}
		return fmt.Errorf("publishing %s: %w", final, err)
	}
	c.cfg.Failpoint("commit.published")
	done := &manifest.Record{Kind: manifest.Committed, Epoch: p.epoch, Owner: c.cfg.Instance, Ref: intent.Seq}
	if err := p.log.Append(done); err != nil {
		return err
	}
	c.cfg.Failpoint("commit.committed")
	p.st.Apply(intent)
	p.st.Apply(done)
	if c.cfg.AllowedLateness > 0 && !p.complete[f.key] {
		p.incomplete[f.key] = true
	}
	p.commits++
	if p.commits%c.cfg.CompactEvery == 0 {
		if err := p.log.Compact(p.st, p.epoch, c.cfg.Instance); err != nil {
			return fmt.Errorf("manifest checkpoint: %w", err)
		}
	}
	c.cfg.Metrics.files.Inc()
	c.cfg.Metrics.rows.Add(float64(rows))
	c.cfg.Metrics.bytes.Add(float64(bytes))
	c.cfg.Metrics.latency.Observe(time.Since(start).Seconds())
	if c.cfg.Log.Enabled(context.Background(), slog.LevelDebug) {
		var ranges []string
		for _, r := range mf.Sources {
			ranges = append(ranges, fmt.Sprintf("%s:%d-%d", r.Source, r.First, r.Last))
		}
		c.cfg.Log.Debug("committed", "file", final, "rows", rows, "bytes", bytes, "sources", ranges, "epoch", p.epoch)
	}
	for _, e := range f.entries {
		p.acks.Release(e, nil)
	}
	c.cfg.Failpoint("commit.acked")
	if len(intent.Catalog) > 0 {
		select {
		case p.catalogWake <- struct{}{}:
		default:
		}
	}
	return nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// recover settles the manifest after a (re)assignment: it makes its own staging directory and claims a new
// epoch, which fences out whoever owned the partition before; completes or abandons that owner's pending
// intents; and removes the staging directories of every older owner, with whatever a zombie was still
// writing there. Its cost depends on the records since the last checkpoint, not on the size of the tables.
func (p *partWriter) recover(ctx context.Context) error {
	c := p.c
	dir := ManifestDir(c.cfg.RowsTopic, p.id)
	root := StagingDir(c.cfg.RowsTopic, p.id)
	nonce := make([]byte, 4)
	for attempt := 0; ; attempt++ {
		log, st, err := manifest.Load(c.cfg.FS, dir)
		if err != nil {
			return err
		}
		if st.Cluster != "" && c.cfg.Cluster != "" && st.Cluster != c.cfg.Cluster {
			return fmt.Errorf("commit partition %d was last claimed by an instance of Kafka cluster %s, this one's is %s: one warehouse, one cluster (give this pipeline its own --warehouse)", p.id, st.Cluster, c.cfg.Cluster)
		}
		epoch := st.Epoch + 1
		_, _ = rand.Read(nonce)
		// The directory exists before the claim: a claim that lands is always followed by writes into a
		// directory that the next owner's recovery can find and remove.
		staging := fs.Join(root, ownerDir(epoch, hex.EncodeToString(nonce)))
		if err := c.cfg.FS.MkdirAll(staging); err != nil {
			return fmt.Errorf("staging directory: %w", err)
		}
		claim := &manifest.Record{Kind: manifest.Claim, Epoch: epoch, Owner: c.cfg.Instance, Cluster: c.cfg.Cluster, Pipeline: c.cfg.Pipeline}
		err = log.Append(claim)
		if err == nil {
			// An owner that read the manifest, then stalled while a newer owner committed and compacted,
			// can find the number it wanted free again: records after it say so.
			var newer bool
			if newer, err = log.Newer(claim.Seq); err == nil && newer {
				err = fmt.Errorf("%w: the claim of epoch %d at record %d is behind newer records", manifest.ErrFenced, epoch, claim.Seq)
			}
		}
		if err != nil {
			_ = c.cfg.FS.RemoveAll(staging)
			if errors.Is(err, manifest.ErrFenced) && attempt < 10 && ctx.Err() == nil {
				continue // a previous owner is still finishing, or this one stalled: read again
			}
			return err
		}
		st.Apply(claim)
		p.log, p.st, p.epoch, p.staging = log, st, claim.Epoch, staging
		break
	}
	c.cfg.Failpoint("recover.claimed")
	seqs := make([]uint64, 0, len(p.st.Pending))
	for seq := range p.st.Pending {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		in := p.st.Pending[seq]
		published := true
		for _, f := range in.Files {
			err := c.cfg.FS.Rename(f.Staging, f.Final)
			switch {
			case err == nil:
			case errors.Is(err, fs.ErrExist):
				// Published already (by a link that was not yet unlinked) — if it is this file: a file of that
				// name and another size is someone else's, and taking it for this one would lose rows.
				st, serr := c.cfg.FS.Stat(f.Final)
				if serr != nil {
					return serr
				}
				if f.Bytes > 0 && st.Size != f.Bytes {
					return fmt.Errorf("completing intent %d: %s exists with %d bytes, not the %d this commit wrote: another writer published it (another pipeline writing this table into this warehouse?)", seq, f.Final, st.Size, f.Bytes)
				}
				_ = c.cfg.FS.Remove(f.Staging)
			case errors.Is(err, fs.ErrNotExist):
				if ok, serr := fs.Exists(c.cfg.FS, f.Final); serr != nil {
					return serr
				} else if !ok {
					published = false
				}
			default:
				return fmt.Errorf("completing intent %d: %w", seq, err)
			}
		}
		kind := manifest.Committed
		if !published {
			kind = manifest.Abort
			c.cfg.Log.Warn("abandoning an intent whose staging file is gone; its rows are redone", "partition", p.id, "intent", seq)
		}
		if published && in.Compaction != nil {
			if err := markCompacted(c.cfg.FS, in.Compaction); err != nil {
				return err
			}
		}
		r := &manifest.Record{Kind: kind, Epoch: p.epoch, Owner: c.cfg.Instance, Ref: seq}
		if err := p.log.Append(r); err != nil {
			return err
		}
		p.st.Apply(r)
		c.cfg.Metrics.recovered.Inc()
	}
	c.cfg.Failpoint("recover.settled")
	// Every staging directory (or file, of older versions) of an older owner is an orphan now: removing it
	// takes with it whatever a zombie owner still writes there, so it can never publish.
	entries, err := c.cfg.FS.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	removed := 0
	for _, e := range entries {
		name := fs.Join(root, e.Name)
		if name == p.staging {
			continue
		}
		if epoch, ok := ownerEpoch(e.Name); ok && e.IsDir && epoch > p.epoch {
			continue // a newer owner's: this one is the zombie, and its next append will find out
		}
		if err := c.cfg.FS.RemoveAll(name); err != nil {
			return err
		}
		removed++
	}
	p.ready = true
	if c.cfg.AllowedLateness > 0 {
		for key := range p.st.Keys {
			p.incomplete[key] = true // until a watermark says otherwise (_SUCCESS written before is found)
		}
	}
	c.cfg.Log.Info("partition recovered", "partition", p.id, "epoch", p.epoch, "intents_settled", len(seqs), "orphans_removed", removed, "keys", len(p.st.Keys))
	return nil
}

// run ends files whose seal is overdue, and commits what is open when the partition is revoked (the next
// owner would redo it all otherwise).
func (p *partWriter) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-t.C:
			p.overdue(time.Now())
		case <-ctx.Done():
			done = true
		}
	}
	p.mu.Lock()
	p.revoked()
	p.account()
	p.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	_ = p.acks.Wait(wctx)
	cancel()
}

// revoked ends the partition's work when its assignment is over (with p.mu held): the open files are
// committed, the records of dead-lettered rows in no file are released with an error (the next owner redoes
// them), and after a failure everything still held is. It runs when the revocation begins and again after
// each message goka hands over late (between the revocation and its processor's stop): that message is done
// when its call returns, so the partition's acknowledgements finish and goka's wait for them ends at once.
func (p *partWriter) revoked() {
	c := p.c
	if p.fatal == nil && p.ready {
		for _, f := range p.files {
			c.cfg.Metrics.unplanned.WithLabelValues("revoked").Inc()
			if err := p.commit(f); err != nil {
				c.cfg.Log.Warn("committing the open files of a revoked partition failed; the owner after this one redoes their rows", "partition", p.id, "error", err)
				p.fatal = err
				break
			}
		}
	}
	for _, hs := range p.holes {
		for _, e := range hs {
			p.acks.Release(e, errors.New("revoked before the next file of a dead-lettered row committed; the next owner redoes it"))
		}
	}
	p.holes = map[string][]*acks.Entry{}
	if p.fatal != nil {
		for _, f := range p.files {
			f.w.Abort()
			_ = fs.Abandon(f.file)
		}
		p.files = map[string]*openFile{}
		go p.acks.FailAll(p.fatal)
	}
}

// overdueAfter is how long past its table's rotate interval an open file waits for its seal before this
// stage ends it: the seal comes from the bucket step's clock within a moment; it never comes when the source
// partition's processor stopped for good without sealing (a crash while its generation was retired). Its
// rows held back the partition's acknowledgements all that time.
func overdueAfter(interval time.Duration) time.Duration { return 2*interval + 30*time.Second }

// overdue ends the open files whose seal is overdue.
func (p *partWriter) overdue(now time.Time) {
	c := p.c
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.budget(nil) // files committed here, estimates grown by the encoders, a budget other partitions filled
	if p.fatal != nil || !p.ready {
		return
	}
	for _, f := range p.files {
		iv := c.cfg.Tables(f.table).Rotation.Interval
		if iv <= 0 || now.Sub(f.opened) < overdueAfter(iv) {
			continue
		}
		c.cfg.Metrics.unplanned.WithLabelValues("overdue").Inc()
		c.cfg.Log.Warn("a file's seal is overdue; ending it here", "partition", p.id, "table", f.table, "path", f.path, "source", f.src, "opened", f.opened)
		if err := p.commit(f); err != nil {
			c.cfg.Log.Error("commit partition failed; the processor restarts and redoes what was not committed", "partition", p.id, "error", err)
			p.fatal = err
			for _, g := range p.files {
				g.w.Abort()
				_ = fs.Abandon(g.file)
			}
			p.files = map[string]*openFile{}
			go p.acks.FailAll(err)
			return
		}
	}
}

// Metrics are the commit stage's Prometheus metrics.
type Metrics struct {
	files       prometheus.Counter
	rows        prometheus.Counter
	bytes       prometheus.Counter
	duplicates  prometheus.Counter
	gaps        prometheus.Counter
	deadLetters prometheus.Counter
	recovered   prometheus.Counter
	open        prometheus.Gauge
	latency     prometheus.Histogram

	catalogPending *prometheus.GaugeVec
	catalogErrors  prometheus.Counter
	catalogApplied prometheus.Counter

	completed     prometheus.Counter
	afterComplete prometheus.Counter
	unplanned     *prometheus.CounterVec
	buffered      prometheus.Gauge
	unnumbered    prometheus.Counter
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		files:      prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_files_total", Help: "Parquet files committed."}),
		rows:       prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_rows_total", Help: "Rows committed."}),
		bytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_bytes_total", Help: "Bytes of Parquet committed."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_duplicates_dropped_total", Help: "Rows dropped because they were already committed."}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_batches_after_gap_total",
			Help: "Row batches dropped because one before them was lost (a failed produce); the ingest stage sends them again."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_dead_letters_total", Help: "Rows the writer refused, sent to dead-letter topics by the commit stage."}),
		recovered:   prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_intents_settled_total", Help: "Pending intents completed or abandoned by recovery."}),
		open:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "minipipe_commit_open_files", Help: "Files being written."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "minipipe_commit_duration_seconds", Help: "Time to commit a file.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_partitions_completed_total",
			Help: "Daily or hourly table partitions marked complete (_SUCCESS) once every source partition's watermark passed them by --allowed-lateness."}),
		afterComplete: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_rows_after_complete_total",
			Help: "Rows committed into a table partition already marked complete (late rows; they are in the table)."}),
		catalogPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "minipipe_catalog_pending_commits",
			Help: "Committed intents whose metastore changes are not applied yet, by commit partition."}, []string{"partition"}),
		unplanned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_commit_unplanned_ends_total",
			Help: "Files the commit stage ended without a seal from the bucket step: a row of a schema the file cannot read (schema), too many open files (open-files), the open files of the instance over --memory-limit's write budget (memory), the partition revoked (revoked), no seal long after the rotate interval (overdue)."},
			[]string{"reason"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "minipipe_commit_buffered_bytes",
			Help: "Memory the open Parquet files of this instance hold (builders, batches being encoded, open row groups), against the write budget (a quarter of --memory-limit)."}),
		unnumbered: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_commit_files_without_field_ids_total",
			Help: "Iceberg files begun without field ids: the catalog could not number their columns in time (readers find them through the table's name mapping)."}),
		catalogErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_catalog_errors_total", Help: "Failed attempts to update the metastore (retried)."}),
		catalogApplied: prometheus.NewCounter(prometheus.CounterOpts{Name: "minipipe_catalog_changes_applied_total", Help: "Metastore changes applied."}),
	}
	if reg != nil {
		reg.MustRegister(m.files, m.rows, m.bytes, m.duplicates, m.gaps, m.deadLetters, m.recovered, m.open, m.latency, m.catalogPending, m.catalogErrors, m.catalogApplied, m.completed, m.afterComplete, m.unplanned, m.buffered, m.unnumbered)
	}
	return m
}
