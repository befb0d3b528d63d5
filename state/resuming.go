package state

import "github.com/lovoo/goka/storage"

// Resuming wraps a view's storage builder so that a read model learns, when a store opens, the offset the
// store already holds: on a restart goka resumes after that offset and calls the view's update callback only
// for newer records, so without this a store that is already up to date would look as if it had applied
// nothing. opened is called with that offset (not called for a store that holds none).
func Resuming(b storage.Builder, opened func(offset int64)) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		return &resuming{Storage: st, opened: opened}, nil
	}
}

type resuming struct {
	storage.Storage
	opened func(int64)
}

func (r *resuming) Open() error {
	if err := r.Storage.Open(); err != nil {
		return err
	}
	if off, err := r.Storage.GetOffset(-1); err == nil && off >= 0 {
		r.opened(off)
	}
	return nil
}
