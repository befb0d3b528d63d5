package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
)

// The placement cache gives what computing the partition afresh gives, whatever order rows come in,
// across day and hour ends, a DST change and field values, and over more partitions than it remembers.
func TestPlaceMatchesSpec(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	base := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC) // Berlin leaves summer time at 01:00 UTC
	var times []time.Time
	for _, d := range []time.Duration{0, 59 * time.Minute, time.Hour, 90 * time.Minute, -time.Millisecond, 2 * time.Hour, 23 * time.Hour, 24 * time.Hour, 30 * time.Minute, 150 * time.Minute, 0} {
		times = append(times, base.Add(d))
	}
	for k := 0; k < 40; k++ { // more partitions than are remembered, back and forth
		times = append(times, base.Add(time.Duration(k*7%23)*time.Hour+time.Duration(k)*time.Minute))
	}
	for _, c := range []struct {
		name string
		spec layout.Spec
	}{
		{"daily", layout.Spec{Kind: layout.Daily}},
		{"hourly", layout.Spec{Kind: layout.Hourly}},
		{"hourly berlin", layout.Spec{Kind: layout.Hourly, Loc: berlin}},
		{"daily berlin", layout.Spec{Kind: layout.Daily, Loc: berlin}},
		{"field", layout.Spec{Kind: layout.Field, Field: "f"}},
		{"none", layout.Spec{Kind: layout.None}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := New(Config{Table: Feed{Table: layout.Table{Name: "t", Topic: "t", Spec: c.spec}, Generation: 3}})
			p := in.newPart(0, context.Background())
			for i, ts := range times {
				field := []string{"a", "a", "b", "a"}[i%4]
				values, path, key := p.place(ts, field)
				want := c.spec.Values(ts, field)
				if layout.Path(values) != layout.Path(want) || path != layout.Path(want) || key != envelope.Key("t", 3, layout.Path(want)) {
					t.Fatalf("row %d at %s: %v %q %q, want %v", i, ts, values, path, key, want)
				}
			}
		})
	}
}
