package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// HiveCompactOptions are minipipe compact's settings for a Hive table.
type HiveCompactOptions struct {
	Partition   string        // only this partition's path (empty: every partition)
	MinFiles    int           // partitions with fewer files are left alone
	TargetBytes int64         // Parquet bytes merged into one file, at most
	Grace       time.Duration // how long replaced files stay, once the metastore moved, for queries that started before
	Wait        time.Duration // how long to wait for the pipeline to do the work
}

// compactState is what the manifests say of one table partition, for minipipe compact.
type compactState struct {
	key       string
	ks        *manifest.KeyState
	manifests int // how many manifests have the key (more than one: it moved between commit partitions)
}

// compactStates reads the committed state of a table generation's partitions from every manifest.
func compactStates(wh fs.FS, table string, gen int) (map[string]compactState, error) {
	root := fs.Join("_minipipe", "manifests")
	topics, err := wh.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]compactState{}
	for _, t := range topics {
		parts, err := wh.ReadDir(fs.Join(root, t.Name))
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			_, st, err := manifest.Load(wh, fs.Join(root, t.Name, p.Name))
			if err != nil {
				return nil, err
			}
			for key, k := range st.Keys {
				if k.Table != table || k.Generation != gen {
					continue
				}
				s := out[key]
				s.key, s.ks = key, k
				s.manifests++
				out[key] = s
			}
		}
	}
	return out, nil
}

// resendEvery is how often minipipe compact asks again for the partitions not compacted yet.
var resendEvery = 20 * time.Second

// compactionDir is the shape of a compaction's directory under a partition's path (_c<request>e<epoch>).
var compactionDir = regexp.MustCompile(`^_c[A-Za-z0-9-]{1,64}e[0-9]+$`)

// RunCompactHive asks the running pipeline to compact a Hive table's partitions (see processors/commit's
// compaction), waits for it, and removes the replaced files after the grace period.
func RunCompactHive(ctx context.Context, cfg Config, table string, opts HiveCompactOptions, out io.Writer) error {
	if opts.MinFiles < 2 {
		opts.MinFiles = 2
	}
	if opts.TargetBytes <= 0 {
		opts.TargetBytes = 128 << 20
	}
	if opts.TargetBytes > envelope.MaxCompactTarget {
		return fmt.Errorf("--target-file-size %d: at most %d (the files merged into one are read into memory)", opts.TargetBytes, envelope.MaxCompactTarget)
	}
	if cfg.Catalog != "hive" {
		return fmt.Errorf("compact moves a Hive table's partitions to their new files in the metastore (--catalog hive): without one, readers that list the table's directories would lose the compacted rows")
	}
	if opts.Partition != "" {
		if _, err := fs.Clean(opts.Partition); err != nil || strings.HasPrefix(opts.Partition, "_") {
			return fmt.Errorf("--partition %q is not a partition path (dt=2026-11-25[/hr=07])", opts.Partition)
		}
	}
	wh, err := fs.Open(cfg.WarehouseURL())
	if err != nil {
		return err
	}
	defer wh.Close()
	gen, err := CurrentGeneration(wh, table)
	if err != nil {
		return err
	}
	if ok, _ := fs.Exists(wh, fs.Join(commit.Location(table, gen), "metadata")); ok {
		return fmt.Errorf("table %s has Iceberg metadata (%s): compact it with --table-format iceberg and the pipeline's --hive-metastore", table, wh.URI(fs.Join(commit.Location(table, gen), "metadata")))
	}
	states, err := compactStates(wh, table, gen)
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return fmt.Errorf("table %s has nothing committed in this warehouse (%s)", table, cfg.WarehouseURL())
	}
	// Files earlier compactions replaced go first (a run stopped before its grace period ended).
	removed := 0
	for _, s := range states {
		n, err := removeReplaced(wh, s, opts.Grace)
		if err != nil {
			return err
		}
		removed += n
	}
	if removed > 0 {
		fmt.Fprintf(out, "removed %d files earlier compactions replaced\n", removed)
	}
	var keys, split []string
	for key, s := range states {
		if s.ks.Path == "" {
			return fmt.Errorf("table %s is not partitioned: compact rewrites partitions (a table's location cannot move under its readers)", table)
		}
		if opts.Partition != "" && s.ks.Path != opts.Partition {
			continue
		}
		if s.manifests > 1 {
			split = append(split, s.ks.Path)
			continue
		}
		if s.ks.Files < int64(opts.MinFiles) || !worthIt(wh, s, opts) {
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	if len(split) > 0 {
		sort.Strings(split)
		fmt.Fprintf(out, "left alone: partitions committed by more than one commit partition (the repartition topic's partitions changed?): %s\n", strings.Join(split, ", "))
	}
	if len(keys) == 0 {
		if opts.Partition != "" {
			if _, ok := findPath(states, opts.Partition); !ok {
				return fmt.Errorf("table %s has no partition %s", table, opts.Partition)
			}
		}
		fmt.Fprintf(out, "%s: no partition has %d or more files that fit %d bytes together\n", table, opts.MinFiles, opts.TargetBytes)
		return nil
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	request := strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(id)
	kcfg, err := cfg.KafkaConfig("minipipe-compact")
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kcfg.ProducerOptions("minipipe-compact")...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	rows := Names{cfg.PipelineName}.RowsTopic()
	send := func(keys []string) error {
		for _, key := range keys {
			v := envelope.EncodeCompact(envelope.Compact{Key: key, Request: request, MinFiles: opts.MinFiles, TargetBytes: opts.TargetBytes})
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: rows, Key: []byte(key), Value: v, Partition: -1}).FirstErr(); err != nil {
				return fmt.Errorf("asking the pipeline (topic %s): %w", rows, err)
			}
		}
		return nil
	}
	if err := send(keys); err != nil {
		return err
	}
	fmt.Fprintf(out, "compaction %s of %d partitions of %s requested; waiting for the pipeline\n", request, len(keys), table)
	deadline := time.Now().Add(opts.Wait)
	sent := time.Now()
	for pending := keys; len(pending) > 0; {
		// A request the owner put off (the metastore behind, a rebalance under way) is sent again: done ones
		// are recognised by their name and not done twice.
		if time.Since(sent) > resendEvery {
			if err := send(pending); err != nil {
				return err
			}
			sent = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d partitions of %s not compacted within %v (is minipipe run running on this warehouse? its log says why a partition was left alone): %s", len(pending), table, opts.Wait, strings.Join(pending, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		now, err := compactStates(wh, table, gen)
		if err != nil {
			return err
		}
		var left []string
		for _, key := range pending {
			s := now[key]
			// Done once the metastore moved: this request's compaction, or a later one's that replaced it.
			if s.ks != nil && s.ks.Compacted(request) && s.ks.LastCompaction != nil && !s.ks.LastCompaction.AppliedAt.IsZero() {
				lc := s.ks.LastCompaction
				if lc.Request == request {
					fmt.Fprintf(out, "%s: %d files (%d bytes) rewritten into %d (%d bytes), %d rows, now in %s\n",
						s.ks.Path, lc.Replaced, lc.ReplacedBytes, lc.Files, lc.Bytes, lc.Rows, wh.URI(s.ks.Dir))
				} else {
					fmt.Fprintf(out, "%s: compacted, then compacted again by %s\n", s.ks.Path, lc.Request)
				}
				continue
			}
			left = append(left, key)
		}
		pending = left
	}
	// Attempt counts of this request (see processors/commit) are of no more use.
	_ = wh.RemoveAll(fs.Join("_minipipe", "compactions", request))
	if opts.Grace > 0 {
		fmt.Fprintf(out, "the replaced files stay %v for queries that started before\n", opts.Grace)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before the grace period ended: the replaced files stay until the next minipipe compact: %w", ctx.Err())
		case <-time.After(opts.Grace):
		}
	}
	now, err := compactStates(wh, table, gen)
	if err != nil {
		return err
	}
	removed = 0
	for _, key := range keys {
		n, err := removeReplaced(wh, now[key], opts.Grace)
		if err != nil {
			return err
		}
		removed += n
	}
	fmt.Fprintf(out, "removed the %d replaced files\n", removed)
	return nil
}

func findPath(states map[string]compactState, p string) (compactState, bool) {
	for _, s := range states {
		if s.ks.Path == p {
			return s, true
		}
	}
	return compactState{}, false
}

// worthIt says whether a compaction of the partition would leave fewer files: two of them fit the target
// size together, and the directory holds exactly the committed files (the commit stage decides again, on
// the same rules).
func worthIt(wh fs.FS, s compactState, opts HiveCompactOptions) bool {
	dir := s.ks.Dir
	if dir == "" {
		dir = fs.Join(commit.Location(s.ks.Table, s.ks.Generation), s.ks.Path)
	}
	entries, err := wh.ReadDir(dir)
	if err != nil {
		return false
	}
	var sizes []int64
	for _, e := range entries {
		if !e.IsDir && strings.HasSuffix(e.Name, ".parquet") && !strings.HasPrefix(e.Name, "_") && !strings.HasPrefix(e.Name, ".") {
			sizes = append(sizes, e.Size)
		}
	}
	groups, size := 0, int64(0)
	for i, n := range sizes {
		if i == 0 || size+n > opts.TargetBytes {
			groups++
			size = 0
		}
		size += n
	}
	return len(sizes) >= opts.MinFiles && int64(len(sizes)) == s.ks.Files && groups < len(sizes)
}

// removeReplaced removes what a compacted partition's earlier files left under its path, once its last
// compaction's metastore move is grace old: the partition's files are all in its directory (every commit
// since went there), so the Parquet files beside it and the other compaction directories are replaced ones.
// It returns how many files it removed.
func removeReplaced(wh fs.FS, s compactState, grace time.Duration) (int, error) {
	ks := s.ks
	if ks == nil || ks.Dir == "" || ks.LastCompaction == nil || ks.LastCompaction.AppliedAt.IsZero() || s.manifests > 1 ||
		time.Since(ks.LastCompaction.AppliedAt) < grace {
		return 0, nil
	}
	canonical := fs.Join(commit.Location(ks.Table, ks.Generation), ks.Path)
	if !strings.HasPrefix(ks.Dir, canonical+"/") {
		return 0, fmt.Errorf("partition %s of %s: its directory %s is not under its path %s", ks.Path, ks.Table, ks.Dir, canonical)
	}
	current := strings.TrimPrefix(ks.Dir, canonical+"/")
	entries, err := wh.ReadDir(canonical)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		name := fs.Join(canonical, e.Name)
		switch {
		case e.IsDir && compactionDir.MatchString(e.Name) && e.Name != current:
			inside, err := wh.ReadDir(name)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, err
			}
			for _, f := range inside {
				if strings.HasSuffix(f.Name, ".parquet") {
					n++
				}
			}
			if err := wh.RemoveAll(name); err != nil {
				return n, fmt.Errorf("removing %s: %w", name, err)
			}
		case !e.IsDir && strings.HasSuffix(e.Name, ".parquet") && !strings.HasPrefix(e.Name, "_") && !strings.HasPrefix(e.Name, "."):
			if err := wh.Remove(name); err != nil {
				return n, fmt.Errorf("removing %s: %w", name, err)
			}
			n++
		}
	}
	return n, nil
}
