// Package hdfs is the warehouse filesystem on HDFS (hdfs://namenode:port/path), on colinmarc/hdfs's native
// client. It keeps the fs.FS contract the commit protocol relies on, with HDFS's own primitives:
//
//   - A file is durable once Close returns: the DataNode pipeline has acknowledged every packet and the
//     NameNode has completed the file (the Java client's close; run DataNodes with dfs.datanode.synconclose
//     to have them fsync too — deploy/hdfs does).
//   - CreateExclusive creates the name without overwrite, so the NameNode lets exactly one of two racing
//     writers have it (the fence of the manifest). HDFS has no atomic create-with-content, so a writer that
//     dies mid-write leaves a torn file under its lease; Settle takes that lease over (HDFS lease recovery)
//     so that nobody can ever complete it, after which the manifest treats it as void.
//   - Rename never replaces an existing target (checked before the move: colinmarc's rename always asks the
//     NameNode to overwrite, so two different writers publishing the same name at the same instant are not
//     told apart; within one pipeline the manifest fence already rules that out).
//
// Errors from an unreachable NameNode or DataNode are marked fs.Retriable; the pipeline backs off and redoes
// what was not committed.
package hdfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/colinmarc/hdfs/v2"

	"github.com/minipipe/minipipe/sinks/fs"
)

func init() {
	fs.Register("hdfs", func(u *url.URL) (fs.FS, error) { return Open(u.String()) })
}

// Option configures the backend.
type Option func(*FS)

// WithUser sets the HDFS user (default: $HADOOP_USER_NAME, else the OS user).
func WithUser(user string) Option { return func(f *FS) { f.user = user } }

// WithLeaseWait bounds how long Settle waits for HDFS to recover a dead writer's lease (default 3 minutes;
// the NameNode's soft limit is 60 s).
func WithLeaseWait(d time.Duration) Option { return func(f *FS) { f.leaseWait = d } }

// FS is a warehouse rooted at a directory of an HDFS cluster.
type FS struct {
	client    *hdfs.Client
	addr      string
	root      string
	user      string
	leaseWait time.Duration

	defaultsOnce sync.Once
	replication  int
	blockSize    int64
	defaultsErr  error
}

// Open connects to hdfs://host:port/root. The root is created if missing.
func Open(raw string, opts ...Option) (*FS, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("warehouse %q: %w", raw, err)
	}
	if u.Scheme != "hdfs" || u.Host == "" {
		return nil, fmt.Errorf("warehouse %q: want hdfs://namenode:port/path", raw)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8020")
	}
	root := path.Clean("/" + u.Path)
	if strings.Contains(u.Path, "..") {
		return nil, fmt.Errorf("warehouse %q: the path must not contain \"..\"", raw)
	}
	f := &FS{addr: host, root: root, leaseWait: 3 * time.Minute}
	for _, o := range opts {
		o(f)
	}
	if f.user == "" {
		f.user = os.Getenv("HADOOP_USER_NAME")
	}
	if f.user == "" {
		f.user = "minipipe"
		if u, err := user.Current(); err == nil && u.Username != "" {
			f.user = u.Username
		}
	}
	dial := (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	f.client, err = hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{host}, User: f.user, NamenodeDialFunc: dial, DatanodeDialFunc: dial})
	if err != nil {
		return nil, classify(fmt.Errorf("warehouse %s: connecting to the NameNode %s: %w", raw, host, err))
	}
	if err := f.client.MkdirAll(root, 0o755); err != nil {
		f.client.Close()
		return nil, classify(fmt.Errorf("warehouse %s: making %s: %w", raw, root, err))
	}
	return f, nil
}

// classify maps colinmarc/os errors onto fs's and marks the transient ones retriable.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrInvalid):
		return err
	case errors.Is(err, iofs.ErrExist):
		return fmt.Errorf("%w: %v", fs.ErrExist, err)
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	var ne net.Error
	var op *net.OpError
	msg := err.Error()
	if errors.As(err, &ne) || errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(msg, "no available namenodes") || strings.Contains(msg, "SafeModeException") ||
		strings.Contains(msg, "RetriableException") || strings.Contains(msg, "replication in progress") ||
		strings.Contains(msg, "no available datanodes") || strings.Contains(msg, "could only be written to 0") {
		return &fs.Retriable{Err: err}
	}
	return err
}

func (f *FS) path(name string) (string, error) {
	c, err := fs.Clean(name)
	if err != nil {
		return "", err
	}
	return path.Join(f.root, c), nil
}

func (f *FS) defaults() (int, int64, error) {
	f.defaultsOnce.Do(func() {
		d, err := f.client.ServerDefaults()
		if err != nil {
			f.defaultsErr = classify(fmt.Errorf("hdfs server defaults: %w", err))
			return
		}
		f.replication, f.blockSize = d.Replication, d.BlockSize
	})
	if f.defaultsErr != nil {
		err := f.defaultsErr
		f.defaultsOnce = sync.Once{} // try again next time
		f.defaultsErr = nil
		return 0, 0, err
	}
	return f.replication, f.blockSize, nil
}

// createFile creates p without overwrite (the NameNode refuses an existing name), making its directory.
func (f *FS) createFile(p string, mkdir bool) (*hdfs.FileWriter, error) {
	if mkdir {
		if err := f.client.MkdirAll(path.Dir(p), 0o755); err != nil {
			return nil, classify(err)
		}
	}
	repl, bs, err := f.defaults()
	if err != nil {
		return nil, err
	}
	w, err := f.client.CreateFile(p, repl, bs, 0o644)
	if err != nil {
		return nil, classify(err)
	}
	return w, nil
}

// closeWriter completes a file, retrying while the NameNode still waits for the last block's replicas.
func closeWriter(w *hdfs.FileWriter) error {
	err := w.Close()
	for i := 0; err != nil && hdfs.IsErrReplicating(err) && i < 50; i++ {
		time.Sleep(time.Duration(i+1) * 20 * time.Millisecond)
		err = w.Close()
	}
	return classify(err)
}

type file struct {
	f    *FS
	w    *hdfs.FileWriter
	name string
	done bool
}

func (h *file) Write(b []byte) (int, error) {
	n, err := h.w.Write(b)
	return n, classify(err)
}

func (h *file) Close() error {
	if h.done {
		return nil
	}
	h.done = true
	if err := closeWriter(h.w); err != nil {
		return fmt.Errorf("closing %s: %w", h.name, err)
	}
	return nil
}

// Create implements fs.FS.
func (f *FS) Create(name string) (fs.File, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	if err := f.client.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return nil, classify(err)
	}
	w, err := f.createFile(p, false) // in an existing directory only: fs.FS's zombie fence
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", p, err)
	}
	return &file{f: f, w: w, name: p}, nil
}

// CreateExclusive implements fs.FS with HDFS's create-without-overwrite.
func (f *FS) CreateExclusive(name string, data []byte) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	w, err := f.createFile(p, true)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	_, err = w.Write(data)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		// Nothing reached the NameNode's completion: this client still holds the lease, nobody else can
		// have completed the file, so it is removed (if that fails too, Settle removes it later).
		_ = f.client.Remove(p)
		return fmt.Errorf("writing %s: %w", p, classify(err))
	}
	if err := closeWriter(w); err != nil {
		return fmt.Errorf("completing %s: %w", p, err)
	}
	return nil
}

// Settle makes sure nobody can still complete name, a file whose content reads torn: it takes the file's
// lease over (waiting for the NameNode to recover it from a writer that died), then closes it unchanged.
// Afterwards the content is final: complete if its writer finished in time, torn for good otherwise.
// A torn file this client itself still holds was never completed by anyone and is removed.
func (f *FS) Settle(name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(f.leaseWait)
	for {
		w, err := f.client.Append(p)
		if err == nil {
			return closeWriter(w)
		}
		if errors.Is(err, iofs.ErrNotExist) {
			return nil
		}
		msg := err.Error()
		if strings.Contains(msg, "current leaseholder is trying to recreate") || strings.Contains(msg, "already the current lease holder") {
			if err := f.client.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
				return classify(err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return classify(fmt.Errorf("settling %s: the lease of its writer was not recovered in %s: %w", p, f.leaseWait, err))
		}
		time.Sleep(2 * time.Second) // AlreadyBeingCreated / RecoveryInProgress: the NameNode recovers the lease
	}
}

func (f *FS) tempName(dir string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return path.Join(dir, ".tmp-"+hex.EncodeToString(b))
}

// WriteFile implements fs.FS: a complete temporary file renamed over the name (HDFS renames atomically).
func (f *FS) WriteFile(name string, data []byte) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	tmp := f.tempName(path.Dir(p))
	w, err := f.createFile(tmp, true)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := w.Write(data); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, classify(err))
	}
	if err := closeWriter(w); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.client.Rename(tmp, p); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, classify(err))
	}
	return nil
}

// ReadFile implements fs.FS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	b, err := f.client.ReadFile(p)
	if err != nil {
		return nil, classify(err)
	}
	return b, nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (io.ReadCloser, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	r, err := f.client.Open(p)
	if err != nil {
		return nil, classify(err)
	}
	return r, nil
}

// Rename implements fs.FS.
func (f *FS) Rename(oldname, newname string) error {
	op, err := f.path(oldname)
	if err != nil {
		return err
	}
	np, err := f.path(newname)
	if err != nil {
		return err
	}
	if _, err := f.client.Stat(op); err != nil {
		return classify(err)
	}
	if _, err := f.client.Stat(np); err == nil {
		return fmt.Errorf("%w: %s", fs.ErrExist, np)
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return classify(err)
	}
	if err := f.client.MkdirAll(path.Dir(np), 0o755); err != nil {
		return classify(err)
	}
	if err := f.client.Rename(op, np); err != nil {
		return classify(err)
	}
	return nil
}

// Remove implements fs.FS.
func (f *FS) Remove(name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	if err := f.client.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return classify(err)
	}
	return nil
}

// RemoveAll implements fs.FS.
func (f *FS) RemoveAll(name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	if err := f.client.RemoveAll(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return classify(err)
	}
	return nil
}

// MkdirAll implements fs.FS.
func (f *FS) MkdirAll(name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	return classify(f.client.MkdirAll(p, 0o755))
}

// ReadDir implements fs.FS.
func (f *FS) ReadDir(name string) ([]fs.Entry, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	infos, err := f.client.ReadDir(p)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]fs.Entry, 0, len(infos))
	for _, i := range infos {
		out = append(out, fs.Entry{Name: i.Name(), Size: i.Size(), IsDir: i.IsDir(), ModTime: i.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stat implements fs.FS.
func (f *FS) Stat(name string) (fs.Entry, error) {
	p, err := f.path(name)
	if err != nil {
		return fs.Entry{}, err
	}
	i, err := f.client.Stat(p)
	if err != nil {
		return fs.Entry{}, classify(err)
	}
	return fs.Entry{Name: i.Name(), Size: i.Size(), IsDir: i.IsDir(), ModTime: i.ModTime()}, nil
}

// URI implements fs.FS.
func (f *FS) URI(name string) string {
	c, err := fs.Clean(name)
	if err != nil {
		c = ""
	}
	u := url.URL{Scheme: "hdfs", Host: f.addr, Path: path.Join(f.root, c)}
	return u.String()
}

// Close implements fs.FS.
func (f *FS) Close() error { return f.client.Close() }
