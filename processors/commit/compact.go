package commit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// Compaction of a Hive table partition (minipipe compact --table-format hive).
//
// A Hive table partition is a directory that query engines list when they plan a query, so its files cannot
// be swapped in place: a reader listing between the new file's arrival and the old ones' removal would count
// rows twice, or miss some. The owner of the partition's commit partition — the only writer of its files,
// fenced by the manifest — therefore writes the merged files into a new directory (<partition>/_c<request>e<epoch>,
// which engines listing the old one skip, as every name starting with '_'), and commits them with one intent
// that says which files they replace. From its Committed record on, the manifest's readers (minipipe query, the
// console) read the new directory and every later commit of the partition goes there; the metastore partition
// is then moved to it with one alter_partition, in order with the partition's other catalog changes, so Trino
// and Spark plan with the old directory or the new one, never a mix. The replaced files stay until minipipe
// compact removes them after its grace period, for queries that started before.

// validRequest is what a request's name may be: it becomes part of a directory name.
var validRequest = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// compact rewrites one table partition's files for a compaction request (with p.mu held). What fails before
// its intent is written is logged and leaves everything as it was; what fails after it is fatal to the
// assignment, whose next owner settles the intent.
func (p *partWriter) compact(ctx context.Context, r envelope.Compact) error {
	c := p.c
	log := c.cfg.Log.With("partition", p.id, "key", r.Key, "request", r.Request)
	ks := p.st.Keys[r.Key]
	switch {
	case !validRequest.MatchString(r.Request):
		log.Error("skipping a compaction request with an invalid name")
		return nil
	case ks == nil:
		log.Info("compaction: nothing committed in this table partition")
		return nil
	case ks.LastCompaction != nil && ks.LastCompaction.Request == r.Request:
		return nil // done already: the request was delivered again
	}
	table, gen, path, err := envelope.SplitKey(r.Key)
	if err != nil || path == "" || len(ks.Partitions) == 0 {
		log.Warn("compaction: only partitioned tables are compacted")
		return nil
	}
	var catalog []manifest.CatalogChange
	dir := ks.Dir
	if dir == "" {
		dir = fs.Join(Location(table, gen), path)
	}
	newDir := fs.Join(Location(table, gen), path, "_c"+r.Request+"e"+strconv.FormatUint(p.epoch, 10))
	if c.cfg.Catalog != nil {
		if catalog, err = c.cfg.Catalog.Relocate(table, gen, ks.Partitions, c.cfg.FS.URI(newDir)); err != nil {
			log.Warn("compaction refused", "error", err)
			return nil
		}
	}
	entries, err := c.cfg.FS.ReadDir(dir)
	if err != nil {
		log.Warn("compaction: listing the partition failed", "dir", dir, "error", err)
		return nil
	}
	type input struct {
		name  string
		bytes int64
	}
	var files []input
	var total int64
	success := false
	for _, e := range entries {
		switch {
		case e.Name == SuccessFile:
			success = true
		case e.IsDir, strings.HasPrefix(e.Name, "_"), strings.HasPrefix(e.Name, "."), !strings.HasSuffix(e.Name, ".parquet"):
		default:
			files = append(files, input{e.Name, e.Size})
			total += e.Size
		}
	}
	if int64(len(files)) != ks.Files {
		// Every committed file of the partition is in its directory, and nothing else: anything else is a
		// hand at work, and rewriting what it left would lose or double rows.
		log.Warn("compaction refused: the partition's directory does not hold exactly its committed files", "dir", dir, "files", len(files), "committed", ks.Files)
		return nil
	}
	if len(files) < max(r.MinFiles, 2) {
		log.Info("compaction: too few files", "files", len(files), "min_files", max(r.MinFiles, 2))
		return nil
	}
	// Files in name order (the order they were cut in, per source), as many to a group as TargetBytes takes.
	var groups [][]input
	var size int64
	for _, f := range files {
		if len(groups) == 0 || size+f.bytes > r.TargetBytes && len(groups[len(groups)-1]) > 0 {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], f)
		size += f.bytes
	}
	if len(groups) == len(files) {
		log.Info("compaction: no two files fit the target size together", "files", len(files), "target_bytes", r.TargetBytes)
		return nil
	}
	start := time.Now()
	schemaID := 0
	for _, id := range ks.SchemaIDs {
		schemaID = max(schemaID, id)
	}
	intent := &manifest.Record{Kind: manifest.Intent, Epoch: p.epoch, Owner: c.cfg.Instance, Catalog: catalog,
		Compaction: &manifest.Compaction{Key: r.Key, Request: r.Request, Dir: newDir, From: dir, ReplacedRows: ks.Rows, ReplacedBytes: total}}
	var staged []string
	abandon := func(err error) error {
		for _, s := range staged {
			_ = c.cfg.FS.Remove(s)
		}
		log.Warn("compaction failed; the partition is as it was", "error", err)
		return nil
	}
	var rows int64
	for i, g := range groups {
		if ctx.Err() != nil {
			return abandon(ctx.Err())
		}
		inputs := make([][]byte, len(g))
		for j, f := range g {
			if inputs[j], err = c.cfg.FS.ReadFile(fs.Join(dir, f.name)); err != nil {
				return abandon(err)
			}
			intent.Compaction.Replaced = append(intent.Compaction.Replaced, f.name)
		}
		name := fmt.Sprintf("part-%05d.parquet", i)
		staging := fs.Join(p.staging, "c-"+r.Request+"-"+name)
		out, err := c.cfg.FS.Create(staging)
		if err != nil {
			return abandon(err)
		}
		staged = append(staged, staging)
		meta := map[string]string{"minipipe.table": table, "minipipe.partition": path, "minipipe.compacted_files": strconv.Itoa(len(g))}
		n, err := parquet.Merge(ctx, out, inputs, meta, c.cfg.Parquet)
		if err != nil {
			_ = fs.Abandon(out)
			return abandon(err)
		}
		if err := out.Close(); err != nil {
			return abandon(err)
		}
		st, err := c.cfg.FS.Stat(staging)
		if err != nil {
			return abandon(err)
		}
		rows += n
		intent.Files = append(intent.Files, manifest.File{Table: table, Generation: gen, Key: r.Key, Path: path, Partitions: ks.Partitions,
			Staging: staging, Final: fs.Join(newDir, name), Rows: n, Bytes: st.Size, SchemaID: schemaID})
	}
	if rows != ks.Rows {
		return abandon(fmt.Errorf("the partition's files hold %d rows, its manifest says %d", rows, ks.Rows))
	}
	c.cfg.Failpoint("compact.staged")
	if err := p.log.Append(intent); err != nil {
		return err
	}
	c.cfg.Failpoint("compact.intent")
	for _, f := range intent.Files {
		if err := c.cfg.FS.Rename(f.Staging, f.Final); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("publishing %s: its staging file is gone: this instance no longer owns commit partition %d: %w", f.Final, p.id, manifest.ErrFenced)
			}
			return fmt.Errorf("publishing %s: %w", f.Final, err)
		}
		c.cfg.Failpoint("compact.published")
	}
	if success { // a complete partition's marker goes with it
		if err := c.cfg.FS.CreateExclusive(fs.Join(newDir, SuccessFile), []byte("{\"committer\":\"minipipe\",\"compacted\":true}\n")); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	done := &manifest.Record{Kind: manifest.Committed, Epoch: p.epoch, Owner: c.cfg.Instance, Ref: intent.Seq}
	if err := p.log.Append(done); err != nil {
		return err
	}
	c.cfg.Failpoint("compact.committed")
	p.st.Apply(intent)
	p.st.Apply(done)
	log.Info("table partition compacted", "files", len(files), "bytes", total, "into", len(intent.Files), "dir", newDir, "rows", rows, "took", time.Since(start).Round(time.Millisecond))
	if len(intent.Catalog) > 0 {
		select {
		case p.catalogWake <- struct{}{}:
		default:
		}
	}
	return nil
}
