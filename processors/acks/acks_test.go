package acks

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestInOrder(t *testing.T) {
	q := NewQueue()
	var got []any
	es := make([]*Entry, 5)
	for i := range es {
		i := i
		es[i] = q.Push(func(err error) { got = append(got, fmt.Sprint(i, " ", err)) })
		q.Hold(es[i]) // handed to some work
		q.Release(es[i], nil)
	}
	// Work finishes out of order: nothing is acknowledged before entry 0.
	q.Release(es[3], nil)
	q.Release(es[1], nil)
	if len(got) != 0 {
		t.Fatalf("acknowledged before the head: %v", got)
	}
	q.Release(es[0], nil)
	if fmt.Sprint(got) != "[0 <nil> 1 <nil>]" {
		t.Fatalf("got %v", got)
	}
	// An entry that failed: no later one is ever acknowledged with nil, or goka would commit past it.
	q.Release(es[2], errors.New("boom"))
	q.Release(es[4], nil)
	want := "[0 <nil> 1 <nil> 2 boom 3 not acknowledged after an earlier message failed: boom 4 not acknowledged after an earlier message failed: boom]"
	if fmt.Sprint(got) != want || q.Len() != 0 {
		t.Fatalf("got %v", got)
	}
	e := q.Push(func(err error) { got = append(got, err.Error()) })
	q.Release(e, nil)
	if got[len(got)-1] != "not acknowledged after an earlier message failed: boom" {
		t.Fatalf("a message pushed after the failure was acknowledged with %v", got[len(got)-1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFailAll(t *testing.T) {
	q := NewQueue()
	var got []error
	for i := 0; i < 3; i++ {
		e := q.Push(func(err error) { got = append(got, err) })
		q.Hold(e)
		q.Release(e, nil)
	}
	q.FailAll(errors.New("revoked"))
	if len(got) != 3 || got[0] == nil {
		t.Fatalf("got %v", got)
	}
}
