package bucket

import (
	"fmt"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/layout"
)

func TestFileBoundaries(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)
	newer := func(prev, id int) bool { return id > prev } // an older schema reads into a newer file
	type row struct {
		offset int64
		size   int
		schema int
	}
	cases := []struct {
		name string
		rot  layout.Rotation
		rows []row
		want string // the decisions, row by row: "." none, "|" after, "<" before, "<|" both
		open string // First..Last and rows of the open file at the end
	}{
		{"by count", layout.Rotation{MaxRecords: 3}, []row{{0, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}}, ". . | .", "3..3 1"},
		{"by bytes", layout.Rotation{MaxBytes: 100}, []row{{5, 60, 1}, {6, 40, 1}, {9, 200, 1}}, ". | |", "-1..9 0"},
		{"newer schema", layout.Rotation{MaxRecords: 10}, []row{{0, 1, 1}, {1, 1, 2}, {2, 1, 1}, {3, 1, 3}}, ". < . <", "3..3 1"},
		{"schema and full", layout.Rotation{MaxRecords: 1}, []row{{0, 1, 1}, {1, 1, 2}}, "| |", "-1..1 0"},
		// A redo passes rows counted before: not counted again, and the seal made at 2 is made again.
		{"redo", layout.Rotation{MaxRecords: 3}, []row{{0, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {4, 1, 1}, {5, 1, 1}}, ". . | . . | . . |", "-1..5 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NewFile()
			var got []string
			for _, r := range c.rows {
				d := f.Add(r.offset, r.size, r.schema, t0, c.rot, newer)
				s := ""
				if d.Before {
					s += "<"
				}
				if d.After {
					s += "|"
				}
				if s == "" {
					s = "."
				}
				got = append(got, s)
			}
			if g := fmt.Sprint(got); g != "["+c.want+"]" {
				t.Errorf("decisions %s, want [%s]", g, c.want)
			}
			if g := fmt.Sprintf("%d..%d %d", f.First, f.Last, f.Rows); g != c.open {
				t.Errorf("open file %s, want %s", g, c.open)
			}
		})
	}
}

func TestFileClockAndPrune(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)
	rot := layout.Rotation{Interval: time.Minute}
	f := NewFile()
	if f.Due(rot, t0) || f.Until(rot, t0) != 0 {
		t.Fatal("nothing open is never due")
	}
	f.Add(10, 5, 1, t0, rot, nil)
	f.Add(11, 5, 1, t0.Add(30*time.Second), rot, nil)
	if f.Due(rot, t0.Add(59*time.Second)) || f.Until(rot, t0.Add(59*time.Second)) != time.Second {
		t.Fatal("due before the interval from the first row")
	}
	if !f.Due(rot, t0.Add(time.Minute)) {
		t.Fatal("not due at the interval")
	}
	f.Seal()
	f.Add(12, 5, 1, t0.Add(time.Minute), rot, nil)
	f.Seal()
	if fmt.Sprint(f.Sealed) != "[11 12]" || f.Open() {
		t.Fatalf("seals %v", f.Sealed)
	}
	// Stored and read back: the same state.
	g, err := DecodeFile(f.Encode())
	if err != nil || fmt.Sprint(*g) != fmt.Sprint(*f) {
		t.Fatalf("round trip %+v %v", g, err)
	}
	if f.Prune(11) || fmt.Sprint(f.Sealed) != "[12]" {
		t.Fatalf("prune at 11: %v", f.Sealed)
	}
	if !f.Prune(12) {
		t.Fatal("nothing left to keep, yet not empty")
	}
	// A state that does not parse is reported (the caller starts a new file).
	if _, err := DecodeFile([]byte("{")); err == nil {
		t.Fatal("garbage decoded")
	}
}
