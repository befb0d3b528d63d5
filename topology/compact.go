package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
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
	TargetBytes int64         // Parquet bytes read into one new file, at most
	Grace       time.Duration // how long replaced files stay for queries that started before
	Wait        time.Duration // how long to wait for the pipeline to do the work
}

// compactState is what the manifests say of one table partition, for minipipe compact.
type compactState struct {
	key     string
	ks      *manifest.KeyState
	applied bool // the last compaction's catalog change is applied (or there is none)
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
			unapplied := map[uint64]bool{}
			for _, seq := range st.Unapplied {
				unapplied[seq] = true
			}
			for key, k := range st.Keys {
				if k.Table != table || k.Generation != gen {
					continue
				}
				applied := k.LastCompaction == nil || !unapplied[k.LastCompaction.Seq]
				out[key] = compactState{key: key, ks: k, applied: applied}
			}
		}
	}
	return out, nil
}

// RunCompactHive asks the running pipeline to compact a Hive table's partitions (see processors/commit's
// compaction), waits for it, and removes the replaced files after the grace period.
func RunCompactHive(ctx context.Context, cfg Config, table string, opts HiveCompactOptions, out io.Writer) error {
	if opts.MinFiles < 2 {
		opts.MinFiles = 2
	}
	if opts.TargetBytes <= 0 {
		opts.TargetBytes = 128 << 20
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
	// Replaced files an earlier run left (it was stopped before its grace ended) go first.
	removed := 0
	for _, s := range states {
		lc := s.ks.LastCompaction
		if lc != nil && s.applied && time.Since(lc.Time) > opts.Grace {
			n, err := removeReplaced(wh, lc)
			if err != nil {
				return err
			}
			removed += n
		}
	}
	if removed > 0 {
		fmt.Fprintf(out, "removed %d files an earlier compaction replaced\n", removed)
	}
	var keys []string
	for key, s := range states {
		if s.ks.Path == "" {
			return fmt.Errorf("table %s is not partitioned: compact rewrites partitions (a table's location cannot move under its readers)", table)
		}
		if opts.Partition != "" && s.ks.Path != opts.Partition {
			continue
		}
		if s.ks.Files < int64(opts.MinFiles) || !worthIt(wh, s, opts) {
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
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
	for _, key := range keys {
		v := envelope.EncodeCompact(envelope.Compact{Key: key, Request: request, MinFiles: opts.MinFiles, TargetBytes: opts.TargetBytes})
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: rows, Key: []byte(key), Value: v, Partition: -1}).FirstErr(); err != nil {
			return fmt.Errorf("asking the pipeline (topic %s): %w", rows, err)
		}
	}
	fmt.Fprintf(out, "compaction %s of %d partitions of %s requested; waiting for the pipeline\n", request, len(keys), table)
	deadline := time.Now().Add(opts.Wait)
	var done []compactState
	for pending := keys; len(pending) > 0; {
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
			if s.ks != nil && s.ks.LastCompaction != nil && s.ks.LastCompaction.Request == request && s.applied {
				lc := s.ks.LastCompaction
				fmt.Fprintf(out, "%s: %d files (%d bytes) rewritten into %d (%d bytes), %d rows, now in %s\n",
					s.ks.Path, len(lc.Replaced), lc.ReplacedBytes, lc.Files, lc.Bytes, lc.Rows, wh.URI(s.ks.Dir))
				done = append(done, s)
				continue
			}
			left = append(left, key)
		}
		pending = left
	}
	if opts.Grace > 0 {
		fmt.Fprintf(out, "the replaced files stay %v for queries that started before\n", opts.Grace)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before the grace period ended: the replaced files stay until the next minipipe compact: %w", ctx.Err())
		case <-time.After(opts.Grace):
		}
	}
	removed = 0
	for _, s := range done {
		n, err := removeReplaced(wh, s.ks.LastCompaction)
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
// size together (the commit stage decides again, on the same rule).
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
	return len(sizes) >= opts.MinFiles && groups < len(sizes)
}

// removeReplaced removes the files a compaction replaced, and their directory when it was an earlier
// compaction's. It returns how many it removed.
func removeReplaced(wh fs.FS, lc *manifest.LastCompaction) (int, error) {
	n := 0
	for _, name := range lc.Replaced {
		p := fs.Join(lc.From, name)
		ok, err := fs.Exists(wh, p)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		if err := wh.Remove(p); err != nil {
			return n, fmt.Errorf("removing %s: %w", p, err)
		}
		n++
	}
	if strings.HasPrefix(path.Base(lc.From), "_c") {
		_ = wh.Remove(fs.Join(lc.From, commit.SuccessFile))
		_ = wh.Remove(lc.From) // empty by now; a missing one is not an error
	}
	return n, nil
}
