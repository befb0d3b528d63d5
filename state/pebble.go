// Package state keeps minipipe's processor state in Pebble through goka's storage.Storage interface. The
// Kafka changelog (or source) topic stays the source of truth: local writes are not synced, and a lost or
// corrupt directory is rebuilt from Kafka.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/lovoo/goka/storage"
)

// offsetKey holds the last Kafka offset applied to the partition's state, as in goka's LevelDB storage;
// iterators hide it.
const offsetKey = "__offset"

// Options tune the Pebble stores a Builder opens.
type Options struct {
	// CacheBytes is the block cache per store (default 8 MiB).
	CacheBytes int64
	// MemTableBytes is the memtable size per store (default 4 MiB).
	MemTableBytes uint64
}

// Builder returns a goka storage builder that keeps each topic partition in its own Pebble store under
// dir/<topic>.<partition>.
func Builder(dir string, opts Options) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		if !validDirName(topic) {
			return nil, fmt.Errorf("state: topic %q cannot name a state directory", topic)
		}
		return Open(filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition)), opts)
	}
}

func validDirName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 249 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Store is one Pebble-backed goka partition storage.
type Store struct {
	path string
	opts Options

	mu sync.RWMutex // guards db against use after Close
	db *pebble.DB
}

var _ storage.Storage = (*Store)(nil)

// Open creates (if needed) and opens the store at path.
func Open(path string, opts Options) (*Store, error) {
	s := &Store{path: path, opts: opts}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

func (s *Store) open() error {
	if err := os.MkdirAll(s.path, 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	cacheBytes := s.opts.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 8 << 20
	}
	mem := s.opts.MemTableBytes
	if mem == 0 {
		mem = 4 << 20
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(s.path, &pebble.Options{
		Cache:        cache,
		MemTableSize: mem,
		Logger:       quietLogger{},
	})
	if err != nil {
		return fmt.Errorf("state: open %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

// Open is part of goka's interface; the store is opened by the constructor.
func (s *Store) Open() error { return nil }

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

var errClosed = errors.New("state: store is closed")

func (s *Store) get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errClosed
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, closer.Close()
}

// Has reports whether key is set.
func (s *Store) Has(key string) (bool, error) {
	v, err := s.get([]byte(key))
	return v != nil, err
}

// Get returns a copy of the value of key, or nil when it is not set.
func (s *Store) Get(key string) ([]byte, error) { return s.get([]byte(key)) }

// Set stores a value; the write is not synced (the topic is the source of truth).
func (s *Store) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errClosed
	}
	return s.db.Set([]byte(key), value, pebble.NoSync)
}

// Delete removes key.
func (s *Store) Delete(key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errClosed
	}
	return s.db.Delete([]byte(key), pebble.NoSync)
}

// GetOffset returns the stored offset, or def when none is stored.
func (s *Store) GetOffset(def int64) (int64, error) {
	v, err := s.get([]byte(offsetKey))
	if err != nil || v == nil {
		return def, err
	}
	o, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return def, fmt.Errorf("state: corrupt offset %q in %s: %w", v, s.path, err)
	}
	return o, nil
}

// SetOffset records the last applied offset.
func (s *Store) SetOffset(offset int64) error {
	return s.Set(offsetKey, []byte(strconv.FormatInt(offset, 10)))
}

// MarkRecovered flushes the memtable once recovery from the changelog is done.
func (s *Store) MarkRecovered() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errClosed
	}
	return s.db.Flush()
}

// Iterator iterates over a snapshot of every key.
func (s *Store) Iterator() (storage.Iterator, error) { return s.IteratorWithRange(nil, nil) }

// IteratorWithRange iterates over [start, limit); an empty limit means every key with prefix start.
func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errClosed
	}
	opts := &pebble.IterOptions{}
	if len(start) > 0 {
		opts.LowerBound = append([]byte(nil), start...)
		if len(limit) == 0 {
			opts.UpperBound = prefixEnd(start)
		}
	}
	if len(limit) > 0 {
		opts.UpperBound = append([]byte(nil), limit...)
	}
	snap := s.db.NewSnapshot()
	it, err := snap.NewIter(opts)
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &iterator{it: it, snap: snap}, nil
}

// prefixEnd is the smallest key greater than every key with the prefix (nil: no bound).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// iterator follows goka's contract: Next must be called before the first pair, including after Seek.
type iterator struct {
	it      *pebble.Iterator
	snap    *pebble.Snapshot
	started bool
	seeked  bool
}

func (i *iterator) Next() bool {
	var ok bool
	switch {
	case i.seeked:
		i.seeked = false
		ok = i.it.Valid()
	case !i.started:
		i.started = true
		ok = i.it.First()
	default:
		ok = i.it.Next()
	}
	for ok && string(i.it.Key()) == offsetKey {
		ok = i.it.Next()
	}
	return ok
}

func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Close(); i.snap.Close() }
func (i *iterator) Seek(key []byte) bool {
	i.started, i.seeked = true, true
	ok := i.it.SeekGE(key)
	for ok && string(i.it.Key()) == offsetKey {
		ok = i.it.Next()
	}
	return ok
}
