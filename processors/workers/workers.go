// Package workers keeps a goka processor's per-partition workers, which the ingest and commit processors
// both need: work that outlives one callback (batches waiting for their linger, files waiting for their
// rotation, acknowledgements waiting for Kafka) belongs to the partition's current assignment. goka calls
// nothing when it assigns a partition, so a worker is made at the first message of an assignment (its
// context differs from the previous assignment's), runs until that context ends, and is then forgotten.
package workers

import (
	"context"
	"sync"
)

// Set is the workers of one processor, by partition.
type Set[W any] struct {
	mu sync.Mutex
	m  map[int32]slot[W]
}

type slot[W any] struct {
	ctx context.Context
	w   W
}

// Get returns the worker of a partition for the assignment ctx belongs to. When there is none yet, it makes
// one with make and runs run in a goroutine of its own; once run returns (the assignment is over, run has
// finished its work), the worker is forgotten, unless a newer assignment already has another.
func (s *Set[W]) Get(partition int32, ctx context.Context, make func() (W, error), run func(W)) (W, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[partition]; ok && cur.ctx == ctx {
		return cur.w, nil
	}
	w, err := make()
	if err != nil {
		return w, err
	}
	if s.m == nil {
		s.m = map[int32]slot[W]{}
	}
	s.m[partition] = slot[W]{ctx: ctx, w: w}
	go func() {
		run(w)
		s.mu.Lock()
		if cur, ok := s.m[partition]; ok && cur.ctx == ctx {
			delete(s.m, partition)
		}
		s.mu.Unlock()
	}()
	return w, nil
}

// Len is the number of partitions with a worker.
func (s *Set[W]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
