package fs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Local is a warehouse in a local folder, crash-safe the way Pebble writes its files: data is written to a
// temporary file and fsynced, moved into place, and the directory is fsynced so that the name survives a
// power loss too.
type Local struct {
	root string
}

// NewLocal opens (and creates) a warehouse rooted at dir.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

// Root is the absolute warehouse directory.
func (l *Local) Root() string { return l.root }

func (l *Local) path(name string) (string, error) {
	c, err := Clean(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(c)), nil
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, iofs.ErrExist):
		return fmt.Errorf("%w: %v", ErrExist, err)
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("%w: %v", ErrNotExist, err)
	}
	return err
}

type localFile struct {
	f    *os.File
	dir  string
	done bool
}

func (f *localFile) Write(b []byte) (int, error) { return f.f.Write(b) }

// Close fsyncs the file and its directory.
func (f *localFile) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	if err := f.f.Sync(); err != nil {
		f.f.Close()
		return err
	}
	if err := f.f.Close(); err != nil {
		return err
	}
	return mapErr(syncDir(f.dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// mkdirAll makes dir and fsyncs the parent of every directory it makes.
func mkdirAll(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, iofs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// Create implements FS.
func (l *Local) Create(name string) (File, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(p)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, mapErr(err)
	}
	return &localFile{f: f, dir: dir}, nil
}

func tempName(dir string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return filepath.Join(dir, ".tmp-"+hex.EncodeToString(b))
}

// writeTemp writes data to a fresh temporary file next to p and fsyncs it.
func writeTemp(p string, data []byte) (string, error) {
	dir := filepath.Dir(p)
	if err := mkdirAll(dir); err != nil {
		return "", err
	}
	tmp := tempName(dir)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// CreateExclusive implements FS: a complete temporary file is hard-linked to the name, which fails if the
// name exists, so the name never shows a partial file.
func (l *Local) CreateExclusive(name string, data []byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(p, data)
	if err != nil {
		return mapErr(err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		return mapErr(err)
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// WriteFile implements FS.
func (l *Local) WriteFile(name string, data []byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(p, data)
	if err != nil {
		return mapErr(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return mapErr(err)
	}
	return syncDir(filepath.Dir(p))
}

// ReadFile implements FS.
func (l *Local) ReadFile(name string) ([]byte, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	return b, mapErr(err)
}

// Open implements FS.
func (l *Local) Open(name string) (io.ReadCloser, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	return f, mapErr(err)
}

// Rename implements FS with renameat2(RENAME_NOREPLACE), or link and unlink where the kernel or the
// filesystem lacks it; either way an existing target is never replaced.
func (l *Local) Rename(oldname, newname string) error {
	op, err := l.path(oldname)
	if err != nil {
		return err
	}
	np, err := l.path(newname)
	if err != nil {
		return err
	}
	if _, err := os.Stat(op); err != nil {
		return mapErr(err)
	}
	dir := filepath.Dir(np)
	if err := mkdirAll(dir); err != nil {
		return mapErr(err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, op, unix.AT_FDCWD, np, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) {
		if err = os.Link(op, np); err == nil {
			err = os.Remove(op)
		}
	}
	if err != nil {
		return mapErr(err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if od := filepath.Dir(op); od != dir {
		return syncDir(od)
	}
	return nil
}

// Remove implements FS.
func (l *Local) Remove(name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll implements FS.
func (l *Local) RemoveAll(name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	return os.RemoveAll(p)
}

// MkdirAll implements FS.
func (l *Local) MkdirAll(name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	return mapErr(mkdirAll(p))
}

// ReadDir implements FS.
func (l *Local) ReadDir(name string) ([]Entry, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	des, err := os.ReadDir(p)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]Entry, 0, len(des))
	for _, d := range des {
		info, err := d.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Entry{Name: d.Name(), Size: info.Size(), IsDir: d.IsDir(), ModTime: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stat implements FS.
func (l *Local) Stat(name string) (Entry, error) {
	p, err := l.path(name)
	if err != nil {
		return Entry{}, err
	}
	info, err := os.Stat(p)
	if err != nil {
		return Entry{}, mapErr(err)
	}
	return Entry{Name: info.Name(), Size: info.Size(), IsDir: info.IsDir(), ModTime: info.ModTime()}, nil
}

// URI implements FS.
func (l *Local) URI(name string) string {
	c, err := Clean(name)
	if err != nil {
		c = ""
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(l.root, c))}
	return u.String()
}

// LocalPath is the operating-system path of name (DuckDB reads local files directly).
func (l *Local) LocalPath(name string) (string, error) { return l.path(name) }

// Close implements FS.
func (l *Local) Close() error { return nil }
