// Package bucket is the bucketing step's model: where a source partition's files end (File, by the table's
// layout.Rotation, a schema change or the clock) and the event-time watermark of a source partition. Where a
// row goes (its table partition and that partition's path) is the shared model in internal/layout.
package bucket

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/state"
)

// FilePrefix starts the keys of the file boundaries in the ingest processor's group table:
// f/<table partition key>, one per table partition a source partition has an open file (or a recent seal) in.
const FilePrefix = "f/"

// File is the bucket step's view of the file one source partition is filling in one table partition: the
// step decides where files end (the table's Rotation, a schema change, the rotate interval) and puts those boundaries in
// the stream as seals; the commit stage writes what it is told. Like the watermark it moves once per
// offset, so a redo after a crash neither counts a row twice nor loses a boundary: rows at or below Last
// were counted before, and a seal decided at one of them (Sealed) is made again when the redo passes it.
type File struct {
	First    int64 `json:"first"`  // offset of the open file's first row (-1: no file open)
	Last     int64 `json:"last"`   // the last offset counted (-1: none)
	Rows     int64 `json:"rows"`   // rows in the open file
	Bytes    int64 `json:"bytes"`  // Avro bytes of those rows
	Opened   int64 `json:"opened"` // wall-clock time of its first row, Unix ms
	SchemaID int   `json:"schema"` // schema id of its rows
	// Sealed are the offsets recent files ended at, kept until the source partition's committed offset
	// passes them (Prune): a redo seals there again.
	Sealed []int64 `json:"sealed,omitempty"`
	// Pending are seals sent without rows (by the clock, or after a dead letter) that Kafka has not
	// confirmed: no record waits for them, so they are kept until confirmed and sent again by the next
	// owner (a seal that arrives twice ends nothing the second time).
	Pending []int64 `json:"pending,omitempty"`
}

// NewFile is the state of a table partition nothing was counted in.
func NewFile() *File { return &File{First: -1, Last: -1} }

// DecodeFile reads a stored file state.
func DecodeFile(b []byte) (*File, error) {
	f, err := state.DecodeJSON(b, *NewFile(), "file boundary")
	return &f, err
}

// Encode is the stored form.
func (f *File) Encode() []byte {
	b, _ := json.Marshal(f)
	return b
}

// Open reports whether a file has rows.
func (f *File) Open() bool { return f.First >= 0 }

// Decision is where the bucket step cuts around one row.
type Decision struct {
	// Before: the open file ends with the row counted before this one (at the returned offset): the row's
	// schema cannot go into it.
	Before   bool
	BeforeAt int64
	// After: the file ends with this row (full, or a redo passing a seal made before).
	After bool
}

// Add counts a row at offset of size Avro bytes and schema id into the file, at now. newFile says whether a
// row of schema id must start a new file after one of schema prev (nil: whenever the id changes).
func (f *File) Add(offset int64, size int, schemaID int, now time.Time, p layout.Rotation, newFile func(prev, id int) bool) Decision {
	if offset <= f.Last {
		return Decision{After: slices.Contains(f.Sealed, offset)}
	}
	var d Decision
	if f.Open() && schemaID != f.SchemaID && (newFile == nil || newFile(f.SchemaID, schemaID)) {
		d.Before, d.BeforeAt = true, f.Last
		f.Seal()
	}
	if !f.Open() {
		f.First, f.Rows, f.Bytes, f.Opened, f.SchemaID = offset, 0, 0, now.UnixMilli(), schemaID
	}
	f.Last = offset
	f.Rows++
	f.Bytes += int64(size)
	if p.Full(f.Rows, f.Bytes) {
		f.Seal()
		d.After = true
	}
	return d
}

// Due reports whether the open file has reached the rotate interval at now.
func (f *File) Due(p layout.Rotation, now time.Time) bool {
	return f.Open() && p.Due(time.UnixMilli(f.Opened), now)
}

// Until is how long until the open file is due (0: no interval, or nothing open).
func (f *File) Until(p layout.Rotation, now time.Time) time.Duration {
	if !f.Open() || p.Interval <= 0 {
		return 0
	}
	return max(time.UnixMilli(f.Opened).Add(p.Interval).Sub(now), time.Millisecond)
}

// Seal ends the open file at Last.
func (f *File) Seal() {
	if !f.Open() {
		return
	}
	f.Sealed = append(f.Sealed, f.Last)
	f.First, f.Rows, f.Bytes, f.Opened, f.SchemaID = -1, 0, 0, 0, 0
}

// Prune forgets the seals at or below the committed offset (no redo starts before it); it reports whether
// the state is empty (no file open, no seal kept) and can be deleted.
func (f *File) Prune(committed int64) (empty bool) {
	f.Sealed = slices.DeleteFunc(f.Sealed, func(o int64) bool { return o <= committed })
	if len(f.Sealed) == 0 {
		f.Sealed = nil
	}
	return !f.Open() && f.Sealed == nil && f.Pending == nil
}

// Confirmed forgets a seal without rows that Kafka has confirmed.
func (f *File) Confirmed(at int64) {
	if i := slices.Index(f.Pending, at); i >= 0 {
		f.Pending = slices.Delete(f.Pending, i, i+1)
	}
	if len(f.Pending) == 0 {
		f.Pending = nil
	}
}
