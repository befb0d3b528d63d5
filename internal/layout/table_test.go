package layout

import (
	"testing"
	"time"
)

func TestRotation(t *testing.T) {
	p := Rotation{MaxRecords: 3, MaxBytes: 100, Interval: time.Minute}
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		rows, bytes int64
		age         time.Duration
		full, due   bool
	}{
		{1, 10, 0, false, false},
		{3, 10, 0, true, false},
		{1, 100, 0, true, false},
		{1, 10, 59 * time.Second, false, false},
		{1, 10, time.Minute, false, true},
	}
	for _, c := range cases {
		if got := p.Full(c.rows, c.bytes); got != c.full {
			t.Errorf("Full(%d,%d) = %v", c.rows, c.bytes, got)
		}
		if got := p.Due(t0, t0.Add(c.age)); got != c.due {
			t.Errorf("Due(%v) = %v", c.age, got)
		}
	}
	if (Rotation{}).Full(1<<40, 1<<40) || (Rotation{}).Due(t0, t0.Add(time.Hour)) {
		t.Error("a zero policy never closes")
	}
}
