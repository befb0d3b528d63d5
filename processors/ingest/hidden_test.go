package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/layout"
)

// A hidden partitioning takes rows whose field is a timestamp (a date for day) within the years 1 to 9999: the
// others are dead letters, not a file whose day the catalog cannot name.
func TestHiddenTime(t *testing.T) {
	day, _ := layout.ParseSpec("day(ts)", "")
	hour, _ := layout.ParseSpec("hour(ts)", "")
	ok := time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec    layout.Spec
		logical string
		typ     avro.Type
		ts      time.Time
		err     string
	}{
		{day, "timestamp-millis", avro.Long, ok, ""},
		{hour, "local-timestamp-micros", avro.Long, ok, ""},
		{day, "date", avro.Int, ok, ""},
		{hour, "date", avro.Int, ok, "date"},
		{day, "", avro.Long, ok, "not an Avro timestamp"},
		{day, "", avro.String, ok, "not an Avro timestamp"},
		{day, "timestamp-millis", avro.Long, time.UnixMilli(1_700_000_000_000_000).UTC(), "year"},
	} {
		err := hiddenTime(tc.spec, &avro.Schema{Type: tc.typ, LogicalType: tc.logical}, tc.ts)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s on a %s %s at %v: %v, want %q", tc.spec, tc.typ, tc.logical, tc.ts, err, tc.err)
		}
	}
}
