package supervise

import (
	"testing"
	"time"
)

func TestMonitorKeepsRestarting(t *testing.T) {
	m := NewMonitor(nil)
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	m.started("commit")
	for i := 0; i < KeepsRestarting-1; i++ {
		m.failed("commit", "boom")
		now = now.Add(10 * time.Second)
		m.started("commit")
	}
	if r := m.Restarting(); len(r) != 0 {
		t.Fatalf("two restarts are not yet restarting: %v", r)
	}
	m.failed("commit", "boom")
	if r := m.Restarting(); len(r) != 1 {
		t.Fatalf("three restarts in a minute: %v", r)
	}
	m.started("commit")
	now = now.Add(Stable)
	if r := m.Restarting(); len(r) != 0 {
		t.Fatalf("running stably for a minute: %v", r)
	}
	m.failed("commit", "boom")
	if r := m.Restarting(); len(r) != 1 {
		t.Fatalf("a fourth failure within the window: %v", r)
	}
	now = now.Add(Window + time.Second)
	m.failed("commit", "boom") // the old ones are out of the window
	if r := m.Restarting(); len(r) != 0 {
		t.Fatalf("old failures count: %v", r)
	}
	m.stopped("commit")
	if r := m.Restarting(); len(r) != 0 {
		t.Fatalf("a stopped processor: %v", r)
	}
}
