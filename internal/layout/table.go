package layout

import "time"

// Table is a table as declared (flags, the config file's tables): the topic it is fed by, how its rows are
// partitioned, where their time comes from and where its files end. Every stage reads this one value.
type Table struct {
	Name           string
	Topic          string
	Spec           Spec
	TimestampField string // "" for the Kafka record timestamp
	Rotation       Rotation
}

// Subject is the registry subject of the table's values (Confluent's TopicNameStrategy).
func (t Table) Subject() string { return t.Topic + "-value" }

// FieldColumns are the data fields that become partition columns (and so leave the files).
func (t Table) FieldColumns() []string {
	if t.Spec.Kind == Field {
		return []string{t.Spec.Field}
	}
	return nil
}

// Rotation is where the bucket step ends a file: after MaxRecords rows, after MaxBytes of the rows' Avro
// bytes (Parquet compresses them: files come out smaller), or Interval after the file's first row, with or
// without new rows.
type Rotation struct {
	MaxRecords int64
	MaxBytes   int64
	Interval   time.Duration
}

// Full reports whether a file of rows rows and bytes bytes must end.
func (r Rotation) Full(rows, bytes int64) bool {
	return (r.MaxRecords > 0 && rows >= r.MaxRecords) || (r.MaxBytes > 0 && bytes >= r.MaxBytes)
}

// Due reports whether a file opened at opened must end at now.
func (r Rotation) Due(opened, now time.Time) bool {
	return r.Interval > 0 && !now.Before(opened.Add(r.Interval))
}
