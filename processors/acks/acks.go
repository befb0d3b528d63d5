// Package acks acknowledges a goka partition's input strictly in offset order. goka marks offset+1 when a
// message's deferred commit is called, and Kafka's committed offset only moves forward, so acknowledging a
// later message while an earlier one is still in flight would skip the earlier one after a crash. Each
// message gets an entry in arrival order; whatever work it is handed to holds it; the entries at the head
// whose holds are all released are acknowledged, in order. Once one is acknowledged with an error (goka then
// stops the processor and the message is redelivered), every later one is acknowledged with an error too:
// acknowledging a later one with nil would commit past the failed one.
package acks

import (
	"context"
	"fmt"
	"sync"
)

// Entry is one message awaiting acknowledgement.
type Entry struct {
	fn      func(error)
	holds   int
	err     error
	settled bool
}

// Queue is one partition's entries, oldest first.
type Queue struct {
	mu      sync.Mutex
	q       []*Entry
	failed  error // the first error acknowledged; every later entry is acknowledged with it
	drainMu sync.Mutex
	empty   chan struct{} // closed when the queue is empty
}

// NewQueue makes an empty queue.
func NewQueue() *Queue {
	q := &Queue{empty: make(chan struct{})}
	close(q.empty)
	return q
}

// Push appends a message's acknowledgement; the caller holds it once until it calls Release.
func (q *Queue) Push(fn func(error)) *Entry {
	e := &Entry{fn: fn, holds: 1}
	q.mu.Lock()
	if len(q.q) == 0 {
		q.empty = make(chan struct{})
	}
	q.q = append(q.q, e)
	q.mu.Unlock()
	return e
}

// Hold adds a hold: one more piece of work the entry waits for.
func (q *Queue) Hold(e *Entry) {
	q.mu.Lock()
	e.holds++
	q.mu.Unlock()
}

// Release drops one hold, recording err if it is the first error, and acknowledges whatever became
// acknowledgeable at the head of the queue.
func (q *Queue) Release(e *Entry, err error) {
	q.mu.Lock()
	if err != nil && e.err == nil {
		e.err = err
	}
	e.holds--
	if e.holds <= 0 {
		e.settled = true
	}
	q.mu.Unlock()
	q.drain()
}

func (q *Queue) drain() {
	q.drainMu.Lock()
	defer q.drainMu.Unlock()
	for {
		q.mu.Lock()
		if len(q.q) == 0 || !q.q[0].settled {
			q.mu.Unlock()
			return
		}
		e := q.q[0]
		q.q[0] = nil
		q.q = q.q[1:]
		if len(q.q) == 0 {
			q.q = nil
			close(q.empty)
		}
		err := e.err
		switch {
		case q.failed != nil && err == nil:
			err = fmt.Errorf("not acknowledged after an earlier message failed: %w", q.failed)
		case q.failed == nil && err != nil:
			q.failed = err
		}
		q.mu.Unlock()
		e.fn(err)
	}
}

// Fail records an error on an entry without releasing a hold: when it settles, it is acknowledged with the
// error (goka then stops the processor, and the message and every later one are redelivered to whoever
// takes the partition).
func (q *Queue) Fail(e *Entry, err error) {
	q.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	q.mu.Unlock()
}

// Failed is the first error an entry was acknowledged with (nil: none).
func (q *Queue) Failed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed
}

// Len is the number of entries not yet acknowledged.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q)
}

// Wait waits until every entry is acknowledged or ctx ends.
func (q *Queue) Wait(ctx context.Context) error {
	q.mu.Lock()
	ch := q.empty
	q.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FailAll settles every entry with err (the partition is going away and its work will not finish) and
// acknowledges them, in order, with that error.
func (q *Queue) FailAll(err error) {
	q.mu.Lock()
	for _, e := range q.q {
		if e.err == nil {
			e.err = err
		}
		e.holds = 0
		e.settled = true
	}
	q.mu.Unlock()
	q.drain()
}
