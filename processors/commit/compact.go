package commit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// compactInput is a file of the partition being compacted.
type compactInput struct {
	name  string
	bytes int64
}

// compactAttempts is how many times one owner after another may start a compaction request before it is
// skipped: a request that kills its owner every time (memory, a reader's panic) must not stop the commit
// partition for good, as the next owner reads it again.
const compactAttempts = 2

// attemptsPath counts the attempts of a request on a key (in the warehouse: they outlive the owner).
func attemptsPath(request, key string) string {
	sum := sha256.Sum256([]byte(key))
	return fs.Join("_minipipe", "compactions", request, hex.EncodeToString(sum[:8]))
}

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
	case ks.Compacted(r.Request):
		return nil // done already: the request was delivered again
	case len(p.st.Unapplied) > 0:
		// The partition's later commits would go to the new directory before the metastore points there.
		log.Warn("compaction refused: the metastore is behind this commit partition; run minipipe compact again once it caught up", "unapplied", len(p.st.Unapplied))
		return nil
	}
	table, gen, path, err := envelope.SplitKey(r.Key)
	if err != nil || path == "" || len(ks.Partitions) == 0 {
		log.Warn("compaction: only partitioned tables are compacted")
		return nil
	}
	var catalog []manifest.CatalogChange
	canonical := fs.Join(Location(table, gen), path)
	dir := ks.Dir
	if dir == "" {
		dir = canonical
	}
	newDir := fs.Join(canonical, "_c"+r.Request+"e"+strconv.FormatUint(p.epoch, 10))
	if c.cfg.Catalog != nil {
		if catalog, err = c.cfg.Catalog.Relocate(table, gen, ks.Partitions, c.cfg.FS.URI(newDir), c.cfg.FS.URI(dir)); err != nil {
			log.Warn("compaction refused", "error", err)
			return nil
		}
	}
	entries, err := c.cfg.FS.ReadDir(dir)
	if err != nil {
		log.Warn("compaction: listing the partition failed", "dir", dir, "error", err)
		return nil
	}
	var files []compactInput
	var total int64
	success := false
	for _, e := range entries {
		switch {
		case e.Name == SuccessFile:
			success = true
		case e.IsDir, strings.HasPrefix(e.Name, "_"), strings.HasPrefix(e.Name, "."), !strings.HasSuffix(e.Name, ".parquet"):
		default:
			files = append(files, compactInput{e.Name, e.Size})
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
	target := min(r.TargetBytes, envelope.MaxCompactTarget)
	// Files in name order (the order they were cut in, per source), as many to a group as the target takes:
	// a group of several is merged (its files, all read, hold at most the target), a file alone is copied.
	var groups [][]compactInput
	var size int64
	for _, f := range files {
		if len(groups) == 0 || size+f.bytes > target {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], f)
		size += f.bytes
	}
	if len(groups) == len(files) {
		log.Info("compaction: no two files fit the target size together", "files", len(files), "target_bytes", target)
		return nil
	}
	// One compaction at a time on this instance: each holds up to the target in memory.
	select {
	case c.compacting <- struct{}{}:
		defer func() { <-c.compacting }()
	case <-ctx.Done():
		return nil
	}
	attempts := attemptsPath(r.Request, r.Key)
	if b, err := c.cfg.FS.ReadFile(attempts); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n >= compactAttempts {
			log.Error("compaction skipped: it was started and not finished twice (the owner died each time: memory? see its log)", "attempts", n)
			return nil
		} else if err := c.cfg.FS.WriteFile(attempts, []byte(strconv.Itoa(n+1)+"\n")); err != nil {
			log.Warn("compaction: recording the attempt failed", "error", err)
			return nil
		}
	} else if err := c.cfg.FS.MkdirAll(path2dir(attempts)); err != nil || c.cfg.FS.WriteFile(attempts, []byte("1\n")) != nil {
		log.Warn("compaction: recording the attempt failed", "error", err)
		return nil
	}
	start := time.Now()
	schemaID := 0
	for _, id := range ks.SchemaIDs {
		schemaID = max(schemaID, id)
	}
	meta := map[string]string{"minipipe.table": table, "minipipe.partition": path, "minipipe.schema_id": strconv.Itoa(schemaID),
		"minipipe.first_row": ""}
	if sch, err := c.schema(ctx, schemaID); err == nil {
		meta["avro.schema"] = sch.Canonical()
	} else {
		meta["avro.schema"] = "" // not the newest schema's: none rather than a wrong one
	}
	intent := &manifest.Record{Kind: manifest.Intent, Epoch: p.epoch, Owner: c.cfg.Instance, Catalog: catalog,
		Compaction: &manifest.Compaction{Key: r.Key, Request: r.Request, Dir: newDir, From: dir, ReplacedRows: ks.Rows, ReplacedBytes: total, Success: success}}
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
		name := fmt.Sprintf("part-%05d.parquet", i)
		staging := fs.Join(p.staging, "c-"+r.Request+"-"+name)
		out, err := c.cfg.FS.Create(staging)
		if err != nil {
			return abandon(err)
		}
		staged = append(staged, staging)
		var n int64
		if len(g) == 1 {
			n, err = copyParquet(ctx, c.cfg.FS, fs.Join(dir, g[0].name), out)
		} else {
			n, err = p.merge(ctx, dir, g, out, meta)
		}
		for _, f := range g {
			intent.Compaction.Replaced = append(intent.Compaction.Replaced, f.name)
		}
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
	if err := markCompacted(c.cfg.FS, intent.Compaction); err != nil {
		return err
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

func path2dir(name string) string {
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		return name[:i]
	}
	return "."
}

// markCompacted gives a compacted complete partition's new directory its _SUCCESS marker too (the one under the
// partition's path stays, for sensors that watch it); recovery calls it again for an intent it settles.
func markCompacted(f fs.FS, c *manifest.Compaction) error {
	if !c.Success {
		return nil
	}
	err := f.CreateExclusive(fs.Join(c.Dir, SuccessFile), []byte("{\"committer\":\"minipipe\",\"compacted\":true}\n"))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// merge writes the files of a group (each under the target size) into out as one; a panic of the Parquet
// reader or writer on a file it does not expect is an error, not the end of the process.
func (p *partWriter) merge(ctx context.Context, dir string, g []compactInput, out io.Writer, meta map[string]string) (n int64, err error) {
	inputs := make([][]byte, len(g))
	for j, f := range g {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if inputs[j], err = p.c.cfg.FS.ReadFile(fs.Join(dir, f.name)); err != nil {
			return 0, err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("merging %d files: %v", len(g), r)
		}
	}()
	return parquet.Merge(ctx, out, inputs, meta, p.c.cfg.Parquet)
}

// copyParquet copies a Parquet file as it is, streaming, and returns the rows its footer says it holds.
func copyParquet(ctx context.Context, f fs.FS, name string, out io.Writer) (int64, error) {
	in, err := f.Open(name)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tail := &tailWriter{max: 1 << 20}
	if _, err := io.Copy(io.MultiWriter(out, tail), &ctxReader{ctx: ctx, r: in}); err != nil {
		return 0, err
	}
	return parquet.FooterRows(tail.b)
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	b   []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
