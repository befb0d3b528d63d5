package topology

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// TableInfo describes a committed table, as the manifests record it.
type TableInfo struct {
	Name             string
	Generation       int
	Location         string
	PartitionColumns []string
	Partitions       []PartitionInfo
	Files, Rows      int64
	Bytes            int64
	SchemaIDs        []int
	LastCommit       time.Time // of the newest file committed
}

// PartitionInfo is one table partition.
type PartitionInfo struct {
	Path string
	// Dir is the partition's directory in the warehouse: Path under the table's location, or where a
	// compaction moved it.
	Dir        string
	Files      int64
	Rows       int64
	Bytes      int64
	SchemaIDs  []int
	LastCommit time.Time
}

// CurrentGeneration is the generation of a table queries read: the one recorded by the last replay that
// swapped in, or the first.
func CurrentGeneration(f fs.FS, table string) (int, error) {
	b, err := f.ReadFile(fs.Join("_minipipe", "tables", table, "generation"))
	if errors.Is(err, fs.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	g, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || g < 1 {
		return 1, nil
	}
	return g, nil
}

// ListTables reads every commit partition's manifest (its latest checkpoint and what follows) and sums
// what is committed per table partition; only each table's current generation is listed.
func ListTables(f fs.FS) ([]TableInfo, error) {
	root := fs.Join("_minipipe", "manifests")
	topics, err := f.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keys := map[string]*manifest.KeyState{}
	var conflict error
	merge := func(key string, k *manifest.KeyState) {
		cur := keys[key]
		if cur != nil && cur.Dir != k.Dir && conflict == nil {
			// Which directory holds the partition's files depends on the manifest: no answer is right.
			conflict = fmt.Errorf("table partition %s is committed by more than one commit partition, in different directories (%q and %q): the repartition topic's partitions changed after a compaction", key, cur.Dir, k.Dir)
		}
		if cur == nil {
			c := *k
			c.SchemaIDs = append([]int(nil), k.SchemaIDs...)
			keys[key] = &c
			return
		}
		cur.Files += k.Files
		cur.Rows += k.Rows
		cur.Bytes += k.Bytes
		if k.LastCommit.After(cur.LastCommit) {
			cur.LastCommit = k.LastCommit
		}
		for _, id := range k.SchemaIDs {
			if !containsInt(cur.SchemaIDs, id) {
				cur.SchemaIDs = append(cur.SchemaIDs, id)
			}
		}
	}
	for _, t := range topics {
		if !t.IsDir {
			continue
		}
		parts, err := f.ReadDir(fs.Join(root, t.Name))
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			if !p.IsDir {
				continue
			}
			_, st, err := manifest.Load(f, fs.Join(root, t.Name, p.Name))
			if err != nil {
				return nil, err
			}
			for key, k := range st.Keys {
				merge(key, k)
			}
		}
	}
	if conflict != nil {
		return nil, conflict
	}
	tables := map[string]*TableInfo{}
	current := map[string]int{}
	for _, k := range keys {
		gen, ok := current[k.Table]
		if !ok {
			if gen, err = CurrentGeneration(f, k.Table); err != nil {
				return nil, err
			}
			current[k.Table] = gen
		}
		if k.Generation != gen {
			continue
		}
		ti := tables[k.Table]
		if ti == nil {
			ti = &TableInfo{Name: k.Table, Generation: gen, Location: commit.Location(k.Table, gen)}
			for _, kv := range k.Partitions {
				ti.PartitionColumns = append(ti.PartitionColumns, kv[0])
			}
			tables[k.Table] = ti
		}
		ids := append([]int(nil), k.SchemaIDs...)
		sort.Ints(ids)
		dir := k.Dir
		if dir == "" {
			dir = ti.Location
			if k.Path != "" {
				dir = fs.Join(ti.Location, k.Path)
			}
		}
		ti.Partitions = append(ti.Partitions, PartitionInfo{Path: k.Path, Dir: dir, Files: k.Files, Rows: k.Rows, Bytes: k.Bytes, SchemaIDs: ids, LastCommit: k.LastCommit})
		if k.LastCommit.After(ti.LastCommit) {
			ti.LastCommit = k.LastCommit
		}
		ti.Files += k.Files
		ti.Rows += k.Rows
		ti.Bytes += k.Bytes
		for _, id := range ids {
			if !containsInt(ti.SchemaIDs, id) {
				ti.SchemaIDs = append(ti.SchemaIDs, id)
			}
		}
	}
	out := make([]TableInfo, 0, len(tables))
	for _, t := range tables {
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Path < t.Partitions[j].Path })
		sort.Ints(t.SchemaIDs)
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// tableFile is a published Parquet file of a table.
type tableFile struct {
	Path string // in the warehouse
	Size int64
}

// tableFiles lists the Parquet files of a table's partitions, each from its directory (not below it: a
// compaction's directory, and the files it replaced, are not the partition's unless it points there), as
// query engines list a Hive partition's location: names starting with '_' or '.' skipped.
func tableFiles(wh fs.FS, t TableInfo) ([]tableFile, error) {
	var out []tableFile
	seen := map[string]bool{}
	for _, p := range t.Partitions {
		if seen[p.Dir] {
			continue
		}
		seen[p.Dir] = true
		entries, err := wh.ReadDir(p.Dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir || strings.HasPrefix(e.Name, "_") || strings.HasPrefix(e.Name, ".") || !strings.HasSuffix(e.Name, ".parquet") {
				continue
			}
			out = append(out, tableFile{Path: fs.Join(p.Dir, e.Name), Size: e.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
