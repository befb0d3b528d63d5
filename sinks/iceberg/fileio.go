package iceberg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/minipipe/minipipe/sinks/fs"
)

// propWarehouse names, in the catalog properties iceberg-go hands its FileIO factories, the warehouse
// whose fs.FS serves a location: every metadata file, manifest and data file goes through the same
// filesystem (and so the same credentials, endpoints and retries) as the commit protocol.
const propWarehouse = "minipipe.warehouse"

// maxMetadataFile bounds what one open of a metadata file, manifest list or manifest reads into memory.
const maxMetadataFile = 256 << 20

var (
	registerOnce sync.Once
	warehouses   sync.Map // root URI → fs.FS
)

// registerIO routes iceberg-go's file:, hdfs:, s3: and s3a: locations to minipipe's warehouse filesystems.
// A location of a warehouse not registered (or without the property) keeps iceberg-go's local files.
func registerIO(root string, wh fs.FS) {
	warehouses.Store(root, wh)
	registerOnce.Do(func() {
		for _, scheme := range []string{"file", "hdfs", "s3", "s3a"} {
			icebergio.Unregister(scheme)
			icebergio.Register(scheme, openIO)
		}
	})
}

func openIO(_ context.Context, u *url.URL, props map[string]string) (icebergio.IO, error) {
	root := props[propWarehouse]
	v, ok := warehouses.Load(root)
	if !ok {
		if u.Scheme == "file" {
			return icebergio.LocalFS{}, nil
		}
		return nil, fmt.Errorf("iceberg location %s: not in a warehouse of this process", u.Redacted())
	}
	return &warehouseIO{root: strings.TrimSuffix(root, "/"), fs: v.(fs.FS)}, nil
}

// warehouseIO is iceberg-go's FileIO over a warehouse: locations under the warehouse's root URI, nothing
// outside it.
type warehouseIO struct {
	root string
	fs   fs.FS
}

// name maps a location to its warehouse name; a location outside the warehouse is ErrInvalid.
func (w *warehouseIO) name(location string) (string, error) {
	rel, ok := strings.CutPrefix(location, w.root+"/")
	if !ok {
		// s3:// and s3a:// name the same object.
		if alt, isS3 := strings.CutPrefix(w.root, "s3a://"); isS3 {
			rel, ok = strings.CutPrefix(location, "s3://"+alt+"/")
		}
	}
	if !ok {
		return "", &iofs.PathError{Op: "open", Path: location, Err: fmt.Errorf("outside the warehouse %s: %w", w.root, fs.ErrInvalid)}
	}
	c, err := fs.Clean(rel)
	if err != nil {
		return "", &iofs.PathError{Op: "open", Path: location, Err: err}
	}
	return c, nil
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w: %w", iofs.ErrNotExist, err)
	}
	return &iofs.PathError{Op: op, Path: name, Err: err}
}

// Open reads the whole file (metadata, manifest lists and manifests: small, read whole by iceberg-go).
func (w *warehouseIO) Open(location string) (icebergio.File, error) {
	n, err := w.name(location)
	if err != nil {
		return nil, err
	}
	r, err := w.fs.Open(n)
	if err != nil {
		return nil, pathErr("open", location, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxMetadataFile+1))
	if err != nil {
		return nil, pathErr("read", location, err)
	}
	if len(data) > maxMetadataFile {
		return nil, pathErr("read", location, fmt.Errorf("larger than %d MiB", maxMetadataFile>>20))
	}
	return &memFile{Reader: bytes.NewReader(data), name: path.Base(n), size: int64(len(data))}, nil
}

// ReadFile implements io.ReadFileIO.
func (w *warehouseIO) ReadFile(location string) ([]byte, error) {
	n, err := w.name(location)
	if err != nil {
		return nil, err
	}
	data, err := w.fs.ReadFile(n)
	if err != nil {
		return nil, pathErr("read", location, err)
	}
	return data, nil
}

// Remove removes a file (old metadata, orphaned manifest lists).
func (w *warehouseIO) Remove(location string) error {
	n, err := w.name(location)
	if err != nil {
		return err
	}
	if err := w.fs.Remove(n); err != nil {
		return pathErr("remove", location, err)
	}
	return nil
}

// WriteFile writes a whole file atomically (metadata files have unique names).
func (w *warehouseIO) WriteFile(location string, p []byte) error {
	n, err := w.name(location)
	if err != nil {
		return err
	}
	if err := w.fs.MkdirAll(path.Dir(n)); err != nil {
		return pathErr("mkdir", location, err)
	}
	if err := w.fs.WriteFile(n, p); err != nil {
		return pathErr("write", location, err)
	}
	return nil
}

// Create buffers the file and writes it whole on Close.
func (w *warehouseIO) Create(location string) (icebergio.FileWriter, error) {
	if _, err := w.name(location); err != nil {
		return nil, err
	}
	return &bufWriter{io: w, location: location}, nil
}

type bufWriter struct {
	io       *warehouseIO
	location string
	buf      bytes.Buffer
	closed   bool
}

func (b *bufWriter) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > maxMetadataFile {
		return 0, pathErr("write", b.location, fmt.Errorf("larger than %d MiB", maxMetadataFile>>20))
	}
	return b.buf.Write(p)
}

func (b *bufWriter) ReadFrom(r io.Reader) (int64, error) {
	room := int64(maxMetadataFile - b.buf.Len())
	n, err := b.buf.ReadFrom(io.LimitReader(r, room+1))
	if err == nil && n > room {
		return n, pathErr("write", b.location, fmt.Errorf("larger than %d MiB", maxMetadataFile>>20))
	}
	return n, err
}

func (b *bufWriter) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	return b.io.WriteFile(b.location, b.buf.Bytes())
}

// memFile is a file read whole.
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Close() error                 { return nil }
func (f *memFile) Stat() (iofs.FileInfo, error) { return fileInfo{f.name, f.size}, nil }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string        { return i.name }
func (i fileInfo) Size() int64         { return i.size }
func (i fileInfo) Mode() iofs.FileMode { return 0o444 }
func (i fileInfo) ModTime() time.Time  { return time.Time{} }
func (i fileInfo) IsDir() bool         { return false }
func (i fileInfo) Sys() any            { return nil }
