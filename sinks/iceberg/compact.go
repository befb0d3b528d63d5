package iceberg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"

	"github.com/minipipe/minipipe/internal/layout"
)

// CompactOptions tune Compact.
type CompactOptions struct {
	// Partition limits the compaction to one table partition, as its path: dt=2026-11-25[/hr=07].
	Partition string
	// TargetFileSize is the size the rewritten files aim at (default 128 MiB); files under 3/4 of it are
	// small.
	TargetFileSize int64
	// MinInputFiles is the fewest small files of a partition worth a rewrite (default 2).
	MinInputFiles uint
	// ExpireOlderThan expires the snapshots older than this (0: none), keeping RetainLast (default 50).
	// Expiry drops them from the metadata only: their files stay (minipipe's manifests and the Hive view
	// of the warehouse still list the files minipipe committed).
	ExpireOlderThan time.Duration
	RetainLast      int
}

// CompactResult is what Compact did.
type CompactResult struct {
	Partitions, FilesBefore, FilesAfter int
	BytesBefore, BytesAfter             int64
	Skipped                             int   // partitions whose files could not be rewritten (logged)
	Snapshot                            int64 // the rewrite's snapshot (0: nothing rewritten)
	Expired                             int
}

// Compact rewrites each partition's small files into files of about the target size, in one atomic
// snapshot (an Iceberg replace: readers see the old files or the new ones, never a mix), with the rows
// unchanged. Appends committed meanwhile are kept: the replace is rebased onto them, and fails only if a
// file it replaces is gone.
func (c *Catalog) Compact(ctx context.Context, name string, opts CompactOptions) (CompactResult, error) {
	var res CompactResult
	tbl, err := c.Load(ctx, name)
	if err != nil {
		return res, err
	}
	if opts.TargetFileSize <= 0 {
		opts.TargetFileSize = 128 << 20
	}
	if opts.MinInputFiles == 0 {
		opts.MinInputFiles = 2
	}
	var scanOpts []table.ScanOption
	if opts.Partition != "" {
		filter, err := partitionFilter(tbl, opts.Partition)
		if err != nil {
			return res, err
		}
		scanOpts = append(scanOpts, table.WithRowFilter(filter))
	}
	if tbl.CurrentSnapshot() != nil {
		tasks, err := tbl.Scan(scanOpts...).PlanFiles(ctx)
		if err != nil {
			return res, fmt.Errorf("planning %s: %w", name, err)
		}
		// The filter picks files; a compaction copies them whole. A residual left on a task would be applied
		// when its file is read, and drop its other rows from the file that replaces it.
		for i := range tasks {
			tasks[i].Residual = nil
		}
		cfg := compaction.DefaultConfig()
		cfg.TargetFileSizeBytes = opts.TargetFileSize
		cfg.MinFileSizeBytes = opts.TargetFileSize * 3 / 4
		cfg.MaxFileSizeBytes = opts.TargetFileSize * 2
		cfg.MinInputFiles = opts.MinInputFiles
		plan, err := cfg.PlanCompaction(tasks)
		if err != nil {
			return res, fmt.Errorf("planning %s: %w", name, err)
		}
		if len(plan.Groups) > 0 {
			next, err := c.rewrite(ctx, tbl, plan, opts.TargetFileSize, &res)
			if err != nil {
				return res, fmt.Errorf("rewriting %s: %w", name, err)
			}
			tbl = next
			if s := tbl.CurrentSnapshot(); s != nil {
				res.Snapshot = s.SnapshotID
			}
			c.cfg.Log.Info("compacted the iceberg table", "table", tbl.Identifier(), "partitions", res.Partitions,
				"files_before", res.FilesBefore, "files_after", res.FilesAfter, "bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter)
		}
	}
	if opts.ExpireOlderThan > 0 {
		if opts.RetainLast <= 0 {
			opts.RetainLast = 50
		}
		before := len(tbl.Metadata().Snapshots())
		txn := tbl.NewTransaction()
		if err := txn.ExpireSnapshots(table.WithOlderThan(opts.ExpireOlderThan), table.WithRetainLast(opts.RetainLast), table.WithPostCommit(false)); err != nil {
			return res, fmt.Errorf("expiring snapshots of %s: %w", name, err)
		}
		next, err := txn.Commit(ctx)
		if err != nil {
			return res, fmt.Errorf("expiring snapshots of %s: %w", name, err)
		}
		res.Expired = before - len(next.Metadata().Snapshots())
	}
	return res, nil
}

// partitionFilter turns a partition path (dt=2026-11-25/hr=07) into a filter on the table's partition
// columns.
func partitionFilter(tbl *table.Table, path string) (iceberg.BooleanExpression, error) {
	var expr iceberg.BooleanExpression = iceberg.AlwaysTrue{}
	if e, ok, err := hiddenFilter(tbl, path); ok || err != nil {
		return e, err
	}
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--partition %q: want COLUMN=VALUE[/COLUMN=VALUE]", path)
		}
		if _, found := tbl.Schema().FindFieldByName(k); !found {
			return nil, fmt.Errorf("--partition %q: the table has no column %s", path, k)
		}
		var term iceberg.BooleanExpression = iceberg.EqualTo(iceberg.Reference(k), layout.Unescape(v))
		if v == hiveNull {
			term = iceberg.IsNull(iceberg.Reference(k))
		}
		expr = iceberg.NewAnd(expr, term)
	}
	return expr, nil
}

// hiddenFilter is the filter of --partition dt=…[/hr=…] on a table partitioned by day or hour of a timestamp
// (or date) field: that day's or hour's range of the field. ok is false for other tables.
func hiddenFilter(tbl *table.Table, path string) (iceberg.BooleanExpression, bool, error) {
	var src iceberg.NestedField
	found, hourly := false, false
	spec := tbl.Spec()
	for _, pf := range spec.Fields() {
		switch pf.Transform.(type) {
		case iceberg.DayTransform:
			src, found = tbl.Schema().FindFieldByID(pf.SourceID())
		case iceberg.HourTransform:
			src, found = tbl.Schema().FindFieldByID(pf.SourceID())
			hourly = true
		}
	}
	if !found {
		return nil, false, nil
	}
	values := map[string]string{}
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || (k != "dt" && k != "hr") {
			return nil, true, fmt.Errorf("--partition %q: the table is partitioned by the time of %s: want dt=YYYY-MM-DD[/hr=HH]", path, src.Name)
		}
		values[k] = v
	}
	if values["hr"] != "" && !hourly {
		return nil, true, fmt.Errorf("--partition %q: the table is partitioned by day(%s): want dt=YYYY-MM-DD", path, src.Name)
	}
	step, layoutStr, text := 24*time.Hour, "2006-01-02", values["dt"]
	if values["hr"] != "" {
		step, layoutStr, text = time.Hour, "2006-01-02 15", values["dt"]+" "+values["hr"]
	}
	start, err := time.ParseInLocation(layoutStr, text, time.UTC)
	if err != nil {
		return nil, true, fmt.Errorf("--partition %q: %w", path, err)
	}
	end := start.Add(step)
	ref := iceberg.Reference(src.Name)
	if _, ok := src.Type.(iceberg.DateType); ok {
		return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, iceberg.Date(start.Unix()/86400)), iceberg.LessThan(ref, iceberg.Date(end.Unix()/86400))), true, nil
	}
	return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, iceberg.Timestamp(start.UnixMicro())), iceberg.LessThan(ref, iceberg.Timestamp(end.UnixMicro()))), true, nil
}

// rewrite writes each group's files into new ones (under the table's _iceberg_data) and replaces them in one
// snapshot. A commit refused as a conflict (iceberg-go retries it, rebased on the appends that came in,
// first) removes the files it wrote; an unknown outcome leaves them (the snapshot may hold them).
func (c *Catalog) rewrite(ctx context.Context, tbl *table.Table, plan compaction.Plan, target int64, res *CompactResult) (*table.Table, error) {
	txn := tbl.NewTransaction()
	rw := txn.NewRewrite(iceberg.Properties{"minipipe.compaction": "true"})
	var written []string
	for _, g := range plan.Groups {
		gr, err := compactGroup(ctx, tbl, g, target)
		if err != nil && ctx.Err() == nil {
			// One partition that cannot be rewritten (a partition value minipipe cannot fill in, a file of
			// another engine) does not keep the others from their compaction.
			var mine []string
			for _, df := range gr.NewDataFiles {
				mine = append(mine, df.FilePath())
			}
			c.removeFiles(mine)
			c.cfg.Log.Warn("a partition's files cannot be compacted; they stay as they are", "table", tbl.Identifier(), "partition", g.PartitionKey, "files", len(g.Tasks), "error", err)
			res.Skipped++
			continue
		}
		for _, df := range gr.NewDataFiles {
			written = append(written, df.FilePath())
		}
		if err != nil {
			c.removeFiles(written)
			return nil, err
		}
		if len(gr.OldDataFiles) == 0 {
			continue
		}
		deletes := false
		for _, t := range g.Tasks {
			deletes = deletes || len(t.DeleteFiles)+len(t.EqualityDeleteFiles)+len(t.DeletionVectorFiles) > 0
		}
		var in, out int64
		for _, df := range gr.OldDataFiles {
			in += df.Count()
		}
		for _, df := range gr.NewDataFiles {
			out += df.Count()
		}
		if !deletes && in != out {
			c.removeFiles(written)
			return nil, fmt.Errorf("a rewrite of %d files would hold %d rows of their %d: not committed", len(gr.OldDataFiles), out, in)
		}
		rw.ApplyResult(gr)
		res.Partitions++
		res.FilesBefore += len(gr.OldDataFiles)
		res.FilesAfter += len(gr.NewDataFiles)
		for _, df := range gr.OldDataFiles {
			res.BytesBefore += df.FileSizeBytes()
		}
		for _, df := range gr.NewDataFiles {
			res.BytesAfter += df.FileSizeBytes()
		}
	}
	if res.Partitions == 0 {
		return tbl, nil
	}
	if err := rw.Commit(ctx); err != nil {
		c.removeFiles(written)
		return nil, err
	}
	next, err := txn.Commit(ctx)
	if err != nil {
		if errors.Is(err, table.ErrCommitFailed) {
			c.removeFiles(written)
		}
		return nil, err
	}
	return next, nil
}

// compactGroup is iceberg-go's ExecuteCompactionGroup for one group of files (all of one partition), with
// the identity partition columns filled from the partition. minipipe's files do not hold those columns (as in
// Hive tables, the value is the partition's), so iceberg-go's reader leaves them null, and its writer would
// take null for the rows' partition: the rows would move to the null partition. Every new file is checked to
// be in the group's partition.
func compactGroup(ctx context.Context, tbl *table.Table, g compaction.Group, target int64) (table.CompactionGroupResult, error) {
	res := table.CompactionGroupResult{PartitionKey: g.PartitionKey, BytesBefore: g.TotalSizeBytes}
	if len(g.Tasks) == 0 {
		return res, nil
	}
	part := g.Tasks[0].File.Partition()
	for _, t := range g.Tasks[1:] {
		if fmt.Sprint(t.File.Partition()) != fmt.Sprint(part) {
			return res, fmt.Errorf("a compaction group spans partitions %v and %v", part, t.File.Partition())
		}
	}
	arrowSchema, records, err := tbl.Scan().ReadTasks(ctx, g.Tasks)
	if err != nil {
		return res, fmt.Errorf("reading the files of partition %v: %w", part, err)
	}
	fills := map[int]any{} // column index → the partition's value
	spec := tbl.Spec()
	for _, pf := range spec.Fields() {
		if _, ok := pf.Transform.(iceberg.IdentityTransform); !ok {
			continue
		}
		name, ok := tbl.Schema().FindColumnName(pf.SourceID())
		if !ok {
			return res, fmt.Errorf("partition field %s has no column", pf.Name)
		}
		if idx := arrowSchema.FieldIndices(name); len(idx) == 1 {
			fills[idx[0]] = part[pf.FieldID]
		}
	}
	filled := func(yield func(arrow.RecordBatch, error) bool) {
		for rec, err := range records {
			if err == nil && len(fills) > 0 {
				rec, err = fillColumns(ctx, rec, fills)
			}
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
	for df, err := range table.WriteRecords(ctx, tbl, arrowSchema, filled, table.WithClusteredWrite(), table.WithTargetFileSize(target)) {
		if err != nil {
			return res, fmt.Errorf("writing the compacted files of partition %v: %w", part, err)
		}
		res.NewDataFiles = append(res.NewDataFiles, df)
		res.BytesAfter += df.FileSizeBytes()
	}
	for _, df := range res.NewDataFiles {
		if fmt.Sprint(df.Partition()) != fmt.Sprint(part) {
			return res, fmt.Errorf("a compacted file of partition %v would be in partition %v", part, df.Partition())
		}
	}
	for _, t := range g.Tasks {
		res.OldDataFiles = append(res.OldDataFiles, t.File)
	}
	res.SafePosDeletes = table.CollectSafePositionDeletes(g.Tasks)
	res.SafeDeletionVectors = table.CollectSafeDeletionVectors(g.Tasks)
	return res, nil
}

// fillColumns is rec with each column of fills that is null in every row set to its value.
func fillColumns(ctx context.Context, rec arrow.RecordBatch, fills map[int]any) (arrow.RecordBatch, error) {
	n := int(rec.NumRows())
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		v, ok := fills[i]
		if !ok || rec.Column(i).NullN() < n {
			// Only a column its file lacks (all null) is filled: a file that holds it keeps its values (a
			// value other than the partition's then fails the partition check rather than being overwritten).
			cols[i] = rec.Column(i)
			continue
		}
		dt := rec.Schema().Field(i).Type
		if v == nil {
			cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, dt, n)
			continue
		}
		b := array.NewStringBuilder(memory.DefaultAllocator)
		text := fmt.Sprint(v)
		for range n {
			b.Append(text)
		}
		str := b.NewArray()
		b.Release()
		if arrow.TypeEqual(dt, arrow.BinaryTypes.String) {
			cols[i] = str
			continue
		}
		cast, err := compute.CastArray(ctx, str, compute.SafeCastOptions(dt))
		str.Release()
		if err != nil {
			return nil, fmt.Errorf("partition column %s: %v as %s: %w", rec.Schema().Field(i).Name, v, dt, err)
		}
		cols[i] = cast
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(n)), nil
}

// removeFiles removes files this process wrote and no snapshot holds (best effort).
func (c *Catalog) removeFiles(locations []string) {
	w := &warehouseIO{root: c.root, fs: c.cfg.FS}
	for _, l := range locations {
		if err := w.Remove(l); err != nil {
			c.cfg.Log.Warn("removing a compaction's unused file", "file", l, "error", err)
		}
	}
}
