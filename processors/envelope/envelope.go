// Package envelope is the format of the records on the repartition topic between the ingest and commit
// stages: a batch of validated rows of one source partition for one table partition (the record key), which
// may carry the seal that ends its file, or a source partition's watermark. Every row keeps its source identity (topic, topic id, partition, offset)
// so that the commit stage can drop what it has already committed.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of envelope.
const (
	KindRows      byte = 1
	KindSeal      byte = 2
	KindWatermark byte = 3
	// KindCompact asks the owner of a table partition to rewrite its files (minipipe compact, Hive tables).
	KindCompact byte = 4
)

const (
	magic = 'M'
	// version 2 added Batch.Prev, version 3 Batch.SealAt; older records still decode.
	version = 3
)

// Source is a source topic partition.
type Source struct {
	Topic     string
	TopicID   string // the topic's id: a recreated topic is another source
	Partition int32
}

// String is the source's identity in the manifest: topic:id:partition.
func (s Source) String() string {
	return s.Topic + ":" + s.TopicID + ":" + strconv.Itoa(int(s.Partition))
}

// Row is one validated record.
type Row struct {
	Offset    int64
	Timestamp int64 // milliseconds since the epoch
	SchemaID  int
	Payload   []byte // Avro binary, without the Confluent header
}

// Batch is rows of one source partition for one table partition, in offset order.
type Batch struct {
	Table      string
	Generation int
	Path       string      // partition path, e.g. dt=2026-11-25
	Partitions [][2]string // partition column values
	Source     Source
	// Prev links the batch to the one before it from the same source partition and table partition: the
	// offset of that batch's last row, or -1 when the ingest stage had sent none before (it started from its
	// committed offset). Every row of the table partition from the source partition between Prev and this
	// batch's first row is in the batches before it, so a batch whose Prev the commit stage has not seen
	// arrives after a lost one (a produce that failed) and is dropped: the ingest stage sends it again.
	Prev int64
	Rows []Row
	// Seal closes a file: the bucket step decided that the file of this table partition from this source
	// partition ends with the row at SealAt — the batch's last row (set by DecodeBatch), or, in a batch
	// without rows, the file's last row, sent before.
	Seal   bool
	SealAt int64
}

// Key is the repartition key of a table partition: table@generation/path.
func Key(table string, gen int, path string) string {
	return table + "@" + strconv.Itoa(gen) + "/" + path
}

// Seal closes the file whose first row is FileID, if it is still open: the seal marker of minipipe before
// the bucket step decided file boundaries (version 2), still read from repartition topics written then.
type Seal struct {
	Key    string
	FileID string
}

// Watermark is a source partition's event-time progress, sent by the bucket step to every partition of the
// repartition topic once every row of the source partition up to Through is in Kafka: the commit stage
// reads it after all those rows, so when every source partition's watermark has passed a table partition
// by the allowed lateness, whatever that partition will hold on time is already in the commit stage.
type Watermark struct {
	Table      string
	Generation int
	Source     Source
	Partitions int32 // of the source topic
	Through    int64 // the last source offset placed
	EventTime  int64 // the latest event time placed, Unix ms
	Arrived    int64 // wall-clock time the source partition's last record arrived, Unix ms
	// Idle says the source partition's processor has read nothing (nor waited for anything) for longer than
	// the allowed lateness, by its own clock: it holds no watermark back.
	Idle bool
}

// EncodeWatermark renders a watermark marker.
func EncodeWatermark(m Watermark) []byte {
	w := writer{}
	w.b = append(w.b, magic, version, KindWatermark)
	w.str(m.Table)
	w.uvarint(uint64(m.Generation))
	w.str(m.Source.Topic)
	w.str(m.Source.TopicID)
	w.varint(int64(m.Source.Partition))
	w.varint(int64(m.Partitions))
	w.varint(m.Through)
	w.varint(m.EventTime)
	w.varint(m.Arrived)
	idle := uint64(0)
	if m.Idle {
		idle = 1
	}
	w.uvarint(idle)
	return w.b
}

// DecodeWatermark parses a watermark marker.
func DecodeWatermark(b []byte) (Watermark, error) {
	if k, err := Kind(b); err != nil || k != KindWatermark {
		return Watermark{}, fmt.Errorf("%w: not a watermark", ErrMalformed)
	}
	r := reader{b: b, p: 3}
	m := Watermark{Table: r.str(), Generation: int(r.uvarint())}
	m.Source = Source{Topic: r.str(), TopicID: r.str(), Partition: int32(r.varint())}
	m.Partitions = int32(r.varint())
	m.Through, m.EventTime, m.Arrived = r.varint(), r.varint(), r.varint()
	switch r.uvarint() {
	case 0:
	case 1:
		m.Idle = true
	default:
		r.fail("idle flag")
	}
	if r.err == nil && r.p != len(b) {
		r.fail("trailing bytes")
	}
	if r.err == nil && (m.Partitions < 1 || m.Partitions > 1<<20 || m.Source.Partition < 0 || m.Source.Partition >= m.Partitions) {
		r.fail("partition")
	}
	return m, r.err
}

// WatermarkKey is the repartition key of a table generation's watermark markers.
func WatermarkKey(table string, gen int) string {
	return table + "@" + strconv.Itoa(gen) + "#watermark"
}

type writer struct{ b []byte }

func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) bytes(v []byte)   { w.uvarint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) str(v string)     { w.uvarint(uint64(len(v))); w.b = append(w.b, v...) }

// EncodeBatch renders a batch.
func EncodeBatch(b *Batch) []byte {
	size := 64 + len(b.Table) + len(b.Path) + len(b.Source.Topic)
	for _, r := range b.Rows {
		size += 24 + len(r.Payload)
	}
	w := writer{b: make([]byte, 0, size)}
	w.b = append(w.b, magic, version, KindRows)
	w.str(b.Table)
	w.uvarint(uint64(b.Generation))
	w.str(b.Path)
	w.uvarint(uint64(len(b.Partitions)))
	for _, p := range b.Partitions {
		w.str(p[0])
		w.str(p[1])
	}
	w.str(b.Source.Topic)
	w.str(b.Source.TopicID)
	w.varint(int64(b.Source.Partition))
	w.varint(b.Prev)
	w.uvarint(uint64(len(b.Rows)))
	var prev int64
	for i, r := range b.Rows {
		if i == 0 {
			w.varint(r.Offset)
		} else {
			w.varint(r.Offset - prev)
		}
		prev = r.Offset
		w.varint(r.Timestamp)
		w.uvarint(uint64(r.SchemaID))
		w.bytes(r.Payload)
	}
	switch {
	case !b.Seal:
		w.uvarint(0)
	case len(b.Rows) > 0:
		w.uvarint(1)
	default:
		w.uvarint(2)
		w.varint(b.SealAt)
	}
	return w.b
}

// EncodeSeal renders a seal marker.
func EncodeSeal(s Seal) []byte {
	w := writer{}
	w.b = append(w.b, magic, 2, KindSeal)
	w.str(s.Key)
	w.str(s.FileID)
	return w.b
}

// Compact asks the commit stage to rewrite the files of one table partition (the record's key) into as few
// as fit TargetBytes each, in a directory of their own that the partition then points at.
type Compact struct {
	Key         string // the table partition's key, table@generation/path
	Request     string // names the request: redelivered, it is done once
	MinFiles    int    // fewer files than this: nothing to do
	TargetBytes int64  // the Parquet bytes merged into one new file, at most MaxCompactTarget (a file bigger is copied alone)
}

// MaxCompactTarget bounds a compaction request's TargetBytes: the files merged into one are read into memory.
const MaxCompactTarget = 1 << 30

// EncodeCompact renders a compaction request.
func EncodeCompact(c Compact) []byte {
	w := writer{}
	w.b = append(w.b, magic, version, KindCompact)
	w.str(c.Key)
	w.str(c.Request)
	w.uvarint(uint64(max(c.MinFiles, 0)))
	w.varint(c.TargetBytes)
	return w.b
}

// DecodeCompact parses a compaction request.
func DecodeCompact(b []byte) (Compact, error) {
	if k, err := Kind(b); err != nil || k != KindCompact {
		return Compact{}, fmt.Errorf("%w: not a compaction request", ErrMalformed)
	}
	r := reader{b: b, p: 3}
	c := Compact{Key: r.str(), Request: r.str()}
	if n := r.uvarint(); n > 1<<20 {
		r.fail("min files")
	} else {
		c.MinFiles = int(n)
	}
	c.TargetBytes = r.varint()
	if r.err == nil && r.p != len(b) {
		r.fail("trailing bytes")
	}
	if r.err == nil && (c.TargetBytes <= 0 || c.TargetBytes > MaxCompactTarget) {
		r.fail("target size")
	}
	if r.err == nil {
		if _, _, _, err := SplitKey(c.Key); err != nil {
			return Compact{}, err
		}
	}
	return c, r.err
}

// ErrMalformed is an envelope that does not parse.
var ErrMalformed = errors.New("malformed envelope")

type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", ErrMalformed, what, r.p)
	}
}

// num reads one varint with read (binary.Uvarint or binary.Varint's shape).
func num[T uint64 | int64](r *reader, read func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := read(r.b[r.p:])
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.p += n
	return v
}

func (r *reader) uvarint() uint64 { return num(r, binary.Uvarint) }
func (r *reader) varint() int64   { return num(r, binary.Varint) }

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.p) {
		r.fail("length")
		return nil
	}
	out := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return out
}

func (r *reader) str() string { return string(r.bytes()) }

// ErrNewerVersion is an envelope written by a newer minipipe than this one: it must not be skipped (its
// rows would be lost), and this instance must be upgraded.
var ErrNewerVersion = errors.New("envelope written by a newer minipipe")

// Kind returns the kind of an encoded envelope.
func Kind(b []byte) (byte, error) {
	if len(b) >= 3 && b[0] == magic && b[1] > version {
		return 0, fmt.Errorf("%w (version %d; this one reads up to %d): upgrade this instance", ErrNewerVersion, b[1], version)
	}
	if len(b) < 3 || b[0] != magic || b[1] < 1 {
		return 0, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	return b[2], nil
}

// DecodeBatch parses a batch; row payloads alias b.
func DecodeBatch(b []byte) (*Batch, error) {
	if k, err := Kind(b); err != nil || k != KindRows {
		return nil, fmt.Errorf("%w: not a batch", ErrMalformed)
	}
	r := reader{b: b, p: 3}
	out := &Batch{Table: r.str(), Generation: int(r.uvarint()), Path: r.str()}
	np := r.uvarint()
	if np > 64 {
		r.fail("partition count")
	}
	for i := uint64(0); i < np && r.err == nil; i++ {
		out.Partitions = append(out.Partitions, [2]string{r.str(), r.str()})
	}
	out.Source = Source{Topic: r.str(), TopicID: r.str(), Partition: int32(r.varint())}
	out.Prev = -1
	if b[1] >= 2 {
		out.Prev = r.varint()
	}
	n := r.uvarint()
	if n > uint64(len(b)) {
		r.fail("row count")
	}
	if r.err == nil {
		out.Rows = make([]Row, 0, n)
	}
	var prev int64
	for i := uint64(0); i < n && r.err == nil; i++ {
		off := r.varint()
		if i > 0 {
			off += prev
		}
		prev = off
		out.Rows = append(out.Rows, Row{Offset: off, Timestamp: r.varint(), SchemaID: int(r.uvarint()), Payload: r.bytes()})
	}
	if b[1] >= 3 {
		switch seal := r.uvarint(); {
		case seal == 0:
		case seal == 1 && len(out.Rows) > 0:
			out.Seal, out.SealAt = true, prev
		case seal == 2 && len(out.Rows) == 0:
			out.Seal, out.SealAt = true, r.varint()
		default:
			r.fail("seal")
		}
		if n == 0 && !out.Seal {
			r.fail("row count") // only a seal comes without rows
		}
	} else if n == 0 {
		r.fail("row count") // only seals come without rows
	}
	if r.err == nil && r.p != len(b) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// DecodeSeal parses a seal marker.
func DecodeSeal(b []byte) (Seal, error) {
	if k, err := Kind(b); err != nil || k != KindSeal {
		return Seal{}, fmt.Errorf("%w: not a seal", ErrMalformed)
	}
	r := reader{b: b, p: 3}
	s := Seal{Key: r.str(), FileID: r.str()}
	if r.err == nil && r.p != len(b) {
		r.fail("trailing bytes")
	}
	return s, r.err
}

// FileID names a file by its first row: topic+partition+offset, zero-padded so names sort by offset.
func FileID(src Source, offset int64) string {
	return fmt.Sprintf("%s+%d+%020d", src.Topic, src.Partition, offset)
}

// SplitKey splits a key into table, generation and path.
func SplitKey(key string) (table string, gen int, path string, err error) {
	at := strings.IndexByte(key, '@')
	slash := strings.IndexByte(key, '/')
	if at < 0 || slash < at {
		return "", 0, "", fmt.Errorf("%w: key %q", ErrMalformed, key)
	}
	g, err := strconv.Atoi(key[at+1 : slash])
	if err != nil {
		return "", 0, "", fmt.Errorf("%w: key %q", ErrMalformed, key)
	}
	return key[:at], g, key[slash+1:], nil
}
