// Package bucket is the bucketing step's model: the rotation policy that closes a file by record count,
// size or age, and the event-time watermark of a source partition. Where a row goes (its table partition
// and that partition's path) is the shared model in internal/layout.
package bucket

import "time"

// Policy closes files: after MaxRecords rows, after MaxBytes (encoded, estimated), or Interval after the
// file's first row — with or without new rows, since the commit stage's timer seals idle files.
type Policy struct {
	MaxRecords int64
	MaxBytes   int64
	Interval   time.Duration
}

// Full reports whether a file of rows rows and bytes bytes must close.
func (p Policy) Full(rows, bytes int64) bool {
	return (p.MaxRecords > 0 && rows >= p.MaxRecords) || (p.MaxBytes > 0 && bytes >= p.MaxBytes)
}

// Due reports whether a file opened at opened must close at now.
func (p Policy) Due(opened, now time.Time) bool {
	return p.Interval > 0 && !now.Before(opened.Add(p.Interval))
}
