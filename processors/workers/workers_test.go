package workers

import (
	"context"
	"testing"
	"time"
)

func TestOneWorkerPerAssignment(t *testing.T) {
	var s Set[*int]
	made := 0
	mk := func(*int, bool) (*int, error) { made++; v := made; return &v, nil }
	ran := make(chan int, 4)
	run := func(w *int) { ran <- *w }

	a1, cancel1 := context.WithCancel(context.Background())
	w, _ := s.Get(0, a1, mk, func(w *int) { <-a1.Done(); run(w) })
	again, _ := s.Get(0, a1, mk, run)
	if w != again || made != 1 {
		t.Fatalf("a second message of the assignment got another worker (%d made)", made)
	}
	other, _ := s.Get(1, a1, mk, func(w *int) { <-a1.Done(); run(w) })
	if other == w || made != 2 {
		t.Fatal("another partition shares the worker")
	}
	// A new assignment of partition 0 while the old worker still finishes: a new worker, and the old one's
	// end does not forget it.
	a2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w2, _ := s.Get(0, a2, mk, func(w *int) { <-a2.Done(); run(w) })
	if w2 == w {
		t.Fatal("a new assignment reused the old worker")
	}
	cancel1()
	for i := 0; i < 2; i++ {
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("the old assignment's workers did not finish")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Running() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s.Running() != 1 {
		t.Fatalf("%d workers running after the old assignment ended, want 1", s.Running())
	}
	if cur, _ := s.Get(0, a2, mk, run); cur != w2 {
		t.Fatal("the new assignment's worker was forgotten")
	}
	// A late message of the ended assignment of partition 1: a new worker, made knowing the ended one.
	var sawPrev *int
	late, _ := s.Get(1, a1, func(prev *int, ended bool) (*int, error) {
		if ended {
			sawPrev = prev
		}
		return mk(prev, ended)
	}, func(*int) {})
	if sawPrev != other || late == other {
		t.Fatalf("the late message's worker was made with prev %v (want the ended worker %v)", sawPrev, other)
	}
}
