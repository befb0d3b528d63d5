// Package fs is the one filesystem interface every warehouse read and write goes through: the local
// folder now, HDFS and S3 behind the same contract. The contract is what the exactly-once commit protocol
// needs — durable closes, an atomic create-if-absent for manifest records, a rename that never replaces —
// and a conformance suite (fstest) that every backend must pass.
package fs

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Errors a backend reports; test with errors.Is.
var (
	ErrExist    = errors.New("file already exists")
	ErrNotExist = errors.New("file does not exist")
	ErrInvalid  = errors.New("invalid path")
)

// Entry describes a file or directory.
type Entry struct {
	Name    string // base name
	Size    int64
	IsDir   bool
	ModTime time.Time
}

// File is a file open for writing. Its contents are durable once Close returns nil.
type File interface {
	io.Writer
	Close() error
}

// FS is a warehouse filesystem. Names are slash-separated paths relative to the warehouse root; a name
// that is absolute, empty or climbs out with ".." is refused with ErrInvalid.
type FS interface {
	// Create opens a new file for writing in an existing directory, replacing any file of that name. A
	// missing directory is ErrNotExist, never made: an owner's staging directory, removed by the owner that
	// takes its place, takes every later write of the old owner with it (the zombie fence).
	Create(name string) (File, error)
	// CreateExclusive writes a whole small file atomically: afterwards name holds exactly data, durably,
	// or the call failed. If name exists it fails with ErrExist and changes nothing (a fence: of two
	// writers racing for one name, exactly one wins).
	CreateExclusive(name string, data []byte) error
	// WriteFile replaces name with data atomically and durably.
	WriteFile(name string, data []byte) error
	// ReadFile returns the contents of name.
	ReadFile(name string) ([]byte, error)
	// Open opens a file for reading.
	Open(name string) (io.ReadCloser, error)
	// Rename moves oldname to newname atomically and durably; it fails with ErrExist, changing nothing,
	// when newname exists. Missing directories of newname are made.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory; a missing one is not an error.
	Remove(name string) error
	// RemoveAll removes a tree; a missing one is not an error.
	RemoveAll(name string) error
	// MkdirAll makes a directory and its parents.
	MkdirAll(name string) error
	// ReadDir lists a directory sorted by name; a missing directory is ErrNotExist.
	ReadDir(name string) ([]Entry, error)
	// Stat describes name.
	Stat(name string) (Entry, error)
	// URI is the location of name for query engines (file:///…, hdfs://…).
	URI(name string) string
	// Close releases the backend's resources.
	Close() error
}

// Clean checks a warehouse path and returns its canonical form. Every path that reaches a backend goes
// through it, so nothing user-given can escape the warehouse root.
func Clean(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) || strings.Contains(name, "\\") {
		return "", fmt.Errorf("%w: %q", ErrInvalid, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q climbs out of the warehouse", ErrInvalid, name)
		}
	}
	c := path.Clean(name)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q", ErrInvalid, name)
	}
	return c, nil
}

// Join joins path elements with slashes.
func Join(elem ...string) string { return path.Join(elem...) }

// Exists reports whether name exists.
func Exists(f FS, name string) (bool, error) {
	_, err := f.Stat(name)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Retriable marks an error of a backend that is worth retrying as it is (an unreachable NameNode, a
// timeout); it wraps the cause.
type Retriable struct{ Err error }

func (e *Retriable) Error() string { return e.Err.Error() }
func (e *Retriable) Unwrap() error { return e.Err }

// IsRetriable reports whether err is marked retriable.
func IsRetriable(err error) bool {
	var r *Retriable
	return errors.As(err, &r)
}

// Settler is implemented by backends where a writer that dies can leave a file torn under its name (HDFS:
// create-without-overwrite cannot also write the content atomically). Settle returns once nobody can
// still complete name; its content is then final, complete or torn for good.
type Settler interface {
	Settle(name string) error
}

// Aborter is implemented by files a writer can give up without publishing anything (an S3 multipart upload,
// aborted instead of completed with what was written so far).
type Aborter interface {
	Abort() error
}

// Abandon gives up a file being written: aborted where the backend can, else closed (the staging file it
// leaves is removed with its directory by recovery).
func Abandon(f File) error {
	if a, ok := f.(Aborter); ok {
		return a.Abort()
	}
	return f.Close()
}
