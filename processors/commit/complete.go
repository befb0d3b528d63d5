package commit

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// Completeness. The bucket step sends each source partition's watermark (envelope.Watermark) to every
// partition of the repartition topic once all the rows it covers are in Kafka, so a commit partition reads
// a watermark after every row it covers. When every source partition of a table has passed the end of a
// daily or hourly table partition by the allowed lateness, whatever that partition holds on time has
// reached this commit partition: its open file is committed, and the partition is marked complete — an
// empty _SUCCESS file in its directory (what Hadoop, Spark and Airflow sensors wait for) and the metastore
// partition parameter minipipe.complete=true. A source partition whose last record is older than the
// lateness is idle and does not hold the others back; one this assignment has not heard from holds them
// back for the lateness after the first watermark of the table. Rows that arrive later still commit, into
// new files, and are counted (minipipe_rows_after_complete_total).

// SuccessFile is the name of the completeness marker in a partition's directory.
const SuccessFile = "_SUCCESS"

// tableMarks is what a commit partition has heard of one table generation's source partitions, by source
// topic (two topics may feed one table).
type tableMarks struct {
	first   time.Time
	sources map[string]*sourceMarks
}

type sourceMarks struct {
	n     int32
	parts map[int32]envelope.Watermark
}

// effective is the table's watermark: the lowest of the source partitions that are not idle (the highest
// of all when every one is); false while a partition not heard from may still hold it back (for the
// lateness after this assignment first heard of the table).
func (m *tableMarks) effective(now time.Time, lateness time.Duration) (int64, bool) {
	low, high := int64(math.MaxInt64), int64(0)
	holding := 0
	for _, src := range m.sources {
		for q := int32(0); q < src.n; q++ {
			w, ok := src.parts[q]
			if !ok {
				if now.Sub(m.first) <= lateness {
					return 0, false
				}
				continue
			}
			high = max(high, w.EventTime)
			if w.Idle {
				continue
			}
			holding++
			low = min(low, w.EventTime)
		}
	}
	if holding == 0 {
		return high, high > 0
	}
	return low, true
}

// maxCompletionsPerMarker bounds the _SUCCESS files one watermark writes (after a restart every committed
// partition is looked at again), so that the partition's lock is never held for long.
const maxCompletionsPerMarker = 100

// watermark applies a watermark marker and completes the table partitions it closes (with p.mu held).
func (p *partWriter) watermark(w envelope.Watermark) error {
	c := p.c
	if c.cfg.AllowedLateness <= 0 {
		return nil
	}
	tk := envelope.WatermarkKey(w.Table, w.Generation)
	m := p.marks[tk]
	if m == nil {
		m = &tableMarks{first: time.Now(), sources: map[string]*sourceMarks{}}
		p.marks[tk] = m
	}
	src := m.sources[w.Source.Topic]
	if src == nil {
		src = &sourceMarks{parts: map[int32]envelope.Watermark{}}
		m.sources[w.Source.Topic] = src
	}
	src.n = max(src.n, w.Partitions)
	if old, ok := src.parts[w.Source.Partition]; !ok || old.Through <= w.Through {
		src.parts[w.Source.Partition] = w
	}
	eff, ok := m.effective(time.Now(), c.cfg.AllowedLateness)
	if !ok {
		return nil
	}
	tbl := c.cfg.Tables(w.Table)
	done := func(key string, partitions [][2]string) bool {
		end, ok := tbl.Spec.End(partitions)
		return ok && end.UnixMilli()+c.cfg.AllowedLateness.Milliseconds() <= eff
	}
	// Open files of partitions now complete are committed first; so are files of late rows in partitions
	// already complete: late rows become visible at the next watermark rather than at the rotate interval.
	for _, f := range p.files {
		if f.table == w.Table && f.gen == w.Generation && (p.complete[f.key] || done(f.key, f.partitions)) {
			if err := p.commit(f); err != nil {
				return err
			}
		}
	}
	tried := 0
	for key := range p.incomplete {
		if tried == maxCompletionsPerMarker {
			break
		}
		ks := p.st.Keys[key]
		if ks == nil || ks.Table != w.Table || ks.Generation != w.Generation {
			continue
		}
		if _, ok := tbl.Spec.End(ks.Partitions); !ok {
			delete(p.incomplete, key) // not partitioned by time: never complete
			continue
		}
		if p.openIn(key) || !done(key, ks.Partitions) {
			continue
		}
		tried++
		if err := p.markComplete(key, ks.Table, ks.Generation, ks.Path, ks.Partitions, eff); err != nil {
			// Not data: the partition stays incomplete here and is tried again at the next watermark.
			c.cfg.Log.Warn("marking a table partition complete failed; trying again at the next watermark", "table", ks.Table, "partition", ks.Path, "error", err)
			continue
		}
		delete(p.incomplete, key)
	}
	return nil
}

// markComplete writes a partition's _SUCCESS (once) and queues its metastore parameter.
func (p *partWriter) markComplete(key, table string, gen int, path string, partitions [][2]string, watermark int64) error {
	c := p.c
	name := fs.Join(Location(table, gen), path, SuccessFile)
	if ks := p.st.Keys[key]; ks != nil && ks.Dir != "" {
		// A compacted partition: sensors watch the partition's path, readers of the metastore its directory.
		if err := markCompacted(c.cfg.FS, &manifest.Compaction{Dir: ks.Dir, Success: true}); err != nil {
			return err
		}
	}
	// Sensors only look for the file; what it says is for people (as the S3A committers' _SUCCESS).
	body, _ := json.Marshal(map[string]any{"committer": "minipipe", "table": table, "generation": gen, "partition": path,
		"watermark": time.UnixMilli(watermark).UTC().Format(time.RFC3339Nano), "lateness": c.cfg.AllowedLateness.String(),
		"marked": time.Now().UTC().Format(time.RFC3339Nano), "instance": c.cfg.Instance})
	err := c.cfg.FS.CreateExclusive(name, append(body, '\n'))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	p.complete[key] = true
	if err == nil {
		c.cfg.Metrics.completed.Inc()
		c.cfg.Log.Info("table partition complete", "table", table, "generation", gen, "partition", path)
	}
	if c.cfg.Catalog != nil {
		p.completeQ = append(p.completeQ, completion{table: table, gen: gen, partitions: partitions, fresh: err == nil})
		select {
		case p.catalogWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// completion is a partition to mark complete in the metastore; fresh when this marking wrote its _SUCCESS
// (not a restart's look at a partition complete before).
type completion struct {
	table      string
	gen        int
	partitions [][2]string
	fresh      bool
}

// PartitionCompactor is a Catalog that compacts a table partition once it is complete (--compact-complete).
// CompactComplete is called once the catalog marked it, only the first time; it must not block (the
// compaction runs beside the commit stage).
type PartitionCompactor interface {
	CompactComplete(table string, gen int, partitions [][2]string)
}

// applyCompletions marks queued partitions complete in the metastore (called by the catalog applier).
func (p *partWriter) applyCompletions(ctx context.Context) error {
	p.mu.Lock()
	q := p.completeQ
	p.mu.Unlock()
	for i, cm := range q {
		if err := p.c.cfg.Catalog.MarkComplete(ctx, cm.table, cm.gen, cm.partitions); err != nil {
			p.mu.Lock()
			p.completeQ = p.completeQ[i:]
			p.mu.Unlock()
			return err
		}
		if pc, ok := p.c.cfg.Catalog.(PartitionCompactor); ok && cm.fresh {
			pc.CompactComplete(cm.table, cm.gen, cm.partitions)
		}
	}
	p.mu.Lock()
	p.completeQ = p.completeQ[len(q):]
	p.mu.Unlock()
	return nil
}

// openIn reports whether a file of table partition key is open.
func (p *partWriter) openIn(key string) bool {
	for _, f := range p.files {
		if f.key == key {
			return true
		}
	}
	return false
}
