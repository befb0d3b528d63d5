package state

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A stage's state lives in its goka group table: goka creates the table topic (compacted, one partition per
// input partition), and when it assigns a partition it replays that partition of the topic into the
// partition's store before the first message is processed, which is how a lost --data-dir is rebuilt. goka
// lets a callback write only the value of the message's own key; a stage keeps state per source partition
// under keys of its own (idempotency keys, counters, watermarks), so it writes the store directly and sends
// each change to the same partition of the table topic itself. goka's replay applies them as it applies its
// own writes.

// Tables tracks the stores goka opens for a processor's group table, so that the processor's callbacks can
// reach the store of the partition they run on.
type Tables struct {
	inner storage.Builder

	mu   sync.Mutex
	open map[string]*tracked // by topic/partition
}

// NewTables wraps a storage builder (nil: goka's in-memory storage, for tests).
func NewTables(inner storage.Builder) *Tables {
	if inner == nil {
		inner = storage.MemoryBuilder()
	}
	return &Tables{inner: inner, open: map[string]*tracked{}}
}

// Builder is the storage builder to give the processor (goka.WithStorageBuilder).
func (t *Tables) Builder() storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := t.inner(topic, partition)
		if err != nil {
			return nil, err
		}
		tr := &tracked{Storage: st, t: t, key: tableKey(topic, partition)}
		t.mu.Lock()
		t.open[tr.key] = tr
		t.mu.Unlock()
		return tr, nil
	}
}

// Store returns the open store of a table partition, or nil when goka has none open.
func (t *Tables) Store(topic string, partition int32) storage.Storage {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.open[tableKey(topic, partition)]; tr != nil {
		return tr
	}
	return nil
}

func tableKey(topic string, partition int32) string { return fmt.Sprintf("%s/%d", topic, partition) }

type tracked struct {
	storage.Storage
	t   *Tables
	key string
}

func (tr *tracked) Close() error {
	tr.t.mu.Lock()
	if tr.t.open[tr.key] == tr {
		delete(tr.t.open, tr.key)
	}
	tr.t.mu.Unlock()
	return tr.Storage.Close()
}

// Producer sends changelog records (a *kgo.Client honouring Record.Partition).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Partition is one partition of a stage's state: its local store and its partition of the table topic.
type Partition struct {
	Store     storage.Storage
	Topic     string // the group table topic
	Partition int32
	Producer  Producer
}

// Get returns the value of key (nil: none).
func (p *Partition) Get(key string) ([]byte, error) { return p.Store.Get(key) }

// Set stores value under key (nil value: delete) in the local store and sends the change to the table
// topic; done is called once Kafka has it (or with the error). The local store answers at once; the change
// survives the loss of the local store only once done reports nil.
func (p *Partition) Set(key string, value []byte, done func(error)) {
	var err error
	if value == nil {
		err = p.Store.Delete(key)
	} else {
		err = p.Store.Set(key, value)
	}
	if err != nil {
		done(fmt.Errorf("state %s/%d: %w", p.Topic, p.Partition, err))
		return
	}
	p.Producer.Produce(context.Background(), &kgo.Record{Topic: p.Topic, Partition: p.Partition, Key: []byte(key), Value: value},
		func(_ *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("state changelog %s/%d: %w", p.Topic, p.Partition, err)
			}
			done(err)
		})
}

// Scan calls fn for every key with the prefix, in key order, until fn returns false.
func (p *Partition) Scan(prefix string, fn func(key, value []byte) bool) error {
	it, err := p.Store.IteratorWithRange([]byte(prefix), nil)
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return err
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Err()
}

// DecodeJSON reads a value a stage stored as JSON; a nil b (nothing stored yet) gives def, and so does a
// value that does not parse, with the error.
func DecodeJSON[T any](b []byte, def T, what string) (T, error) {
	if b == nil {
		return def, nil
	}
	v := def
	if err := json.Unmarshal(b, &v); err != nil {
		return def, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}
