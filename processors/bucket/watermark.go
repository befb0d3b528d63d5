package bucket

import (
	"encoding/json"
	"time"

	"github.com/minipipe/minipipe/state"
)

// WatermarkKey is the key of a source partition's watermark in the ingest processor's group table.
const WatermarkKey = "w/"

// Watermark is the bucket stage's event-time progress of one source partition of a table: the latest event
// time it has placed and when its last record arrived. Like the validation stats it moves once per offset.
type Watermark struct {
	Through   int64 `json:"through"`    // the last offset observed (-1: none)
	EventTime int64 `json:"event_time"` // the latest event time placed, Unix ms
	Arrived   int64 `json:"arrived"`    // wall-clock time of the last record, Unix ms
	Late      int64 `json:"late"`       // rows placed behind EventTime by more than the allowed lateness
}

// NewWatermark is the watermark of a partition nothing was placed from.
func NewWatermark() Watermark { return Watermark{Through: -1} }

// DecodeWatermark reads a stored watermark (nil: none yet).
func DecodeWatermark(b []byte) (Watermark, error) {
	return state.DecodeJSON(b, NewWatermark(), "watermark")
}

// Encode is the stored form.
func (w *Watermark) Encode() []byte {
	b, _ := json.Marshal(w)
	return b
}

// Observe moves the watermark past a row at offset with event time ev, arriving now; it reports whether
// the row is late: behind the watermark by more than lateness (lateness 0: lateness is not tracked).
// A row at or below Through was observed before and changes nothing.
func (w *Watermark) Observe(offset int64, ev, now time.Time, lateness time.Duration) (late bool) {
	if offset <= w.Through {
		return false
	}
	w.Through = offset
	w.Arrived = now.UnixMilli()
	ms := ev.UnixMilli()
	if lateness > 0 && w.EventTime > 0 && ms < w.EventTime-lateness.Milliseconds() {
		w.Late++
		late = true
	}
	w.EventTime = max(w.EventTime, ms)
	return late
}
