package topology

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/sinks/fs"
)

// QueryViews returns the views DuckDB needs for sql over any warehouse. A local one is read in place
// (QueryTables). DuckDB cannot reach HDFS or S3 here (its extensions are downloaded, and this machine is offline),
// so a remote table named in sql is mirrored into cacheDir first: its published Parquet files, which never
// change once published, each copied once, and files gone from the table (a replay's swap) removed from the
// mirror. Tables sql does not name are left out.
//
// The mirror is locked until release is called (after the query): two queries on one cache take turns, and none
// sees a file another removes. Each view names its files (no glob), so a file missing is an error, not fewer rows.
func QueryViews(ctx context.Context, wh fs.FS, cacheDir, sql string) (views []query.View, release func(), err error) {
	if _, ok := wh.(interface{ LocalPath(string) (string, error) }); ok {
		views, err := QueryTables(wh)
		return views, func() {}, err
	}
	key := wh.URI("")
	if ck, ok := wh.(interface{ CacheKey() string }); ok {
		key = ck.CacheKey() // the server too, not only the bucket and prefix
	}
	sum := sha256.Sum256([]byte(key))
	root := filepath.Join(cacheDir, hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, nil, err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("locking the query cache %s: %w", root, err)
	}
	release = func() { lock.Close() } // closing the file releases its lock
	defer func() {
		if err != nil {
			release()
		}
	}()
	// The tables are read under the lock: a query with an older list must not prune what a newer one mirrored.
	tables, err := ListTables(wh)
	if err != nil {
		return nil, nil, err
	}
	pruneMirrors(root, tables)
	var out []query.View
	for _, t := range tables {
		if !mentions(sql, t.Name) {
			continue
		}
		qt := query.View{Name: t.Name, PartitionFields: t.PartitionColumns}
		if t.Files > 0 {
			files, err := mirror(ctx, wh, t, filepath.Join(root, filepath.FromSlash(t.Location)))
			if err != nil {
				return nil, nil, fmt.Errorf("table %s: copying its files for DuckDB: %w", t.Name, err)
			}
			qt.Files = files
		}
		out = append(out, qt)
	}
	return out, release, nil
}

// pruneMirrors removes the mirrors of locations no table has any more: a generation a replay swapped out, a
// table dropped. A location is a directory at the warehouse's top (layout.Location), and so in the mirror.
func pruneMirrors(root string, tables []TableInfo) {
	keep := map[string]bool{}
	for _, t := range tables {
		keep[filepath.FromSlash(t.Location)] = true
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// mentions reports whether sql names table (as a word, in any case).
func mentions(sql, table string) bool {
	return regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(table) + `($|[^A-Za-z0-9_])`).MatchString(sql)
}

// mirror makes local the published Parquet files of a table (tableFiles): copied when missing or of another
// size, removed when gone. It returns the local files.
func mirror(ctx context.Context, wh fs.FS, t TableInfo, local string) ([]string, error) {
	want := map[string]int64{} // path relative to the table's location → size
	listed, err := tableFiles(wh, t)
	if err != nil {
		return nil, err
	}
	for _, f := range listed {
		rel, ok := strings.CutPrefix(f.Path, t.Location+"/")
		if !ok {
			return nil, fmt.Errorf("file %s is outside its table's location %s", f.Path, t.Location)
		}
		want[filepath.FromSlash(rel)] = f.Size
	}
	location := t.Location
	if err := os.MkdirAll(local, 0o700); err != nil {
		return nil, err
	}
	// Files no longer in the table go from the mirror.
	_ = filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(local, p)
		if _, ok := want[rel]; !ok {
			_ = os.Remove(p)
		}
		return nil
	})
	var todo []string
	for rel, size := range want {
		if st, err := os.Stat(filepath.Join(local, rel)); err != nil || st.Size() != size {
			todo = append(todo, rel)
		}
	}
	// Four copies at a time.
	work := make(chan string)
	errs := make(chan error, len(todo))
	var wg sync.WaitGroup
	for range min(4, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rel := range work {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					continue
				}
				errs <- copyFile(wh, fs.Join(location, filepath.ToSlash(rel)), filepath.Join(local, rel))
			}
		}()
	}
	for _, rel := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- rel
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	files := make([]string, 0, len(want))
	for rel := range want {
		files = append(files, filepath.Join(local, rel))
	}
	sort.Strings(files)
	return files, ctx.Err()
}

// copyFile copies a warehouse file to a local path: a temporary file, then a rename, so that a copy cut short
// is never taken for the file.
func copyFile(wh fs.FS, name, local string) error {
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return err
	}
	r, err := wh.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp, err := os.CreateTemp(filepath.Dir(local), ".copy-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("copying %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), local)
}
