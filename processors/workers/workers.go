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
	ctx   context.Context
	w     W
	ended bool
}

// Get returns the worker of a partition for the assignment ctx belongs to. When there is none yet, it makes
// one with make and runs run in a goroutine of its own. A worker whose run has returned (its assignment is
// over) stays known until a newer assignment of the partition comes: a message goka hands over late, for
// the assignment that is over, goes to make with the ended one as prev (ended true): make may return prev
// itself (run then runs again on it) or a new worker that carries over what prev knew (a failure, its
// acknowledgement queue). Acknowledgements of one assignment must stay in one queue: a second queue could
// acknowledge a later message while the first still holds an earlier one, and Kafka's offset would pass it.
func (s *Set[W]) Get(partition int32, ctx context.Context, make func(prev W, ended bool) (W, error), run func(W)) (W, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[partition]
	if ok && cur.ctx == ctx && !cur.ended {
		return cur.w, nil
	}
	var prev W
	ended := ok && cur.ctx == ctx
	if ended {
		prev = cur.w
	}
	w, err := make(prev, ended)
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
			cur.ended = true
			s.m[partition] = cur
		}
		s.mu.Unlock()
	}()
	return w, nil
}

// Running is the number of partitions whose worker runs.
func (s *Set[W]) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sl := range s.m {
		if !sl.ended {
			n++
		}
	}
	return n
}
