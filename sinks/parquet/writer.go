package parquet

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Options tune the files written.
type Options struct {
	// Compression: snappy (default), zstd, gzip or none.
	Compression string
	// CompressionLevel: zstd 1–22 (the Go encoder has four speeds: 1–2, 3–5, 6–9, 10 and up; 0 is 1, as in
	// Arrow C++), gzip 1–9 (0 is 6). Snappy and none have no levels.
	CompressionLevel int
	// RowGroupRows caps a row group (default 256k rows); RowGroupBytes too (default 64 MiB, encoded).
	RowGroupRows  int64
	RowGroupBytes int64
	// BatchRows is how many rows are gathered in Arrow builders before they are encoded (default 8192);
	// BatchBytes ends a batch sooner, once its rows came from that many bytes of Avro (default 8 MiB), so
	// that wide or large records do not multiply a file's memory.
	BatchRows  int
	BatchBytes int
	// Encodings, when set, chooses each column's dictionary from the table's last files (see Encodings);
	// Table names the table in it.
	Encodings *Encodings
	Table     string
}

func (o *Options) defaults() {
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 256 << 10
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 64 << 20
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 8192
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 8 << 20
	}
}

// Codec parses a compression name.
func Codec(name string) (compress.Compression, error) {
	switch strings.ToLower(name) {
	case "", "snappy":
		return compress.Codecs.Snappy, nil
	case "zstd":
		return compress.Codecs.Zstd, nil
	case "gzip":
		return compress.Codecs.Gzip, nil
	case "none", "uncompressed":
		return compress.Codecs.Uncompressed, nil
	}
	return compress.Codecs.Uncompressed, fmt.Errorf("unknown Parquet compression %q (snappy, zstd, gzip, none)", name)
}

// CheckLevel says whether level suits the compression named.
func CheckLevel(compression string, level int) error {
	if level == 0 {
		return nil
	}
	switch strings.ToLower(compression) {
	case "zstd":
		if level >= 1 && level <= 22 {
			return nil
		}
		return fmt.Errorf("zstd compression levels are 1–22, not %d", level)
	case "gzip":
		if level >= 1 && level <= 9 {
			return nil
		}
		return fmt.Errorf("gzip compression levels are 1–9, not %d", level)
	}
	return fmt.Errorf("%s compression has no levels (only zstd and gzip do)", compression)
}

// countingWriter counts the bytes that reach the file.
type countingWriter struct {
	w   io.Writer
	n   atomic.Int64
	err atomic.Pointer[error] // the first write error
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	if err != nil {
		c.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Writer streams rows into one Parquet file: rows gather in Arrow builders, every BatchRows they are
// encoded into the current row group, and row groups are flushed to the file as they fill. Encoding and
// compressing a batch (most of a wide row's cost) runs on a goroutine of the file's own while the next batch
// is decoded: a file that fills uses two cores. At most one batch waits for it, so a file's memory is its
// builders, one batch queued, one being encoded and its open row group.
type Writer struct {
	opts   Options
	schema *arrow.Schema
	out    *countingWriter
	fw     *pqarrow.FileWriter
	rb     *array.RecordBuilder
	rows   int64
	batch  int
	bytes  int       // Avro bytes of the batch being gathered
	kept   []keptRow // the rows of the batch being gathered
	// careful: a row of the batch being gathered failed part way; the rest are checked before they are appended.
	careful bool
	batches int // record batches handed to the encoder
	closed  bool
	// The size of the last batch handed to the encoder, per column its variable-length data: the next
	// batch's builders are reserved at once instead of growing by doubling (copying every value again).
	lastRows int
	lastData []int
	lastMem  int64 // the memory of the last batch's buffers
	// Until the first batch: what the file writer is made with (start).
	codec    compress.Compression
	level    int
	meta     map[string]string
	arrProps pqarrow.ArrowWriterProperties
	// Options.Encodings: how the file writes the columns it decided on, and those judged plain on its first batch.
	plan         map[string]choice
	sampledPlain map[string]bool
	learned      bool    // the file's lesson was given (learn)
	varBytes     []int64 // per column, the plain size of its strings or binaries written (4 bytes each + data)

	queue    chan batch    // batches for the encoder; nil until the first batch fills
	done     chan struct{} // closed when the encoder has stopped
	mu       sync.Mutex
	err      error        // the encoder's first error (with mu)
	pending  atomic.Int64 // the encoded bytes of the open row group, as of the encoder's last batch
	inflight atomic.Int64 // the memory of the batches handed to the encoder and not yet encoded
}

// NewWriter starts a Parquet file with the given columns; meta goes into the footer's key-value metadata.
func NewWriter(w io.Writer, schema *arrow.Schema, meta map[string]string, opts Options) (*Writer, error) {
	opts.defaults()
	codec, err := Codec(opts.Compression)
	if err != nil {
		return nil, err
	}
	if err := CheckLevel(opts.Compression, opts.CompressionLevel); err != nil {
		return nil, err
	}
	level := compress.DefaultCompressionLevel
	if opts.CompressionLevel != 0 {
		level = opts.CompressionLevel
	}
	// Timestamps keep their unit (millis or micros); the Arrow schema is stored so that Arrow readers see the
	// exact types back.
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	sc, err := pqarrow.ToParquet(schema, parquet.NewWriterProperties(), arrProps)
	if err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	wr := &Writer{opts: opts, schema: schema, out: &countingWriter{w: w}, rb: array.NewRecordBuilder(memory.DefaultAllocator, schema),
		codec: codec, level: level, meta: meta, arrProps: arrProps}
	if opts.Encodings != nil {
		paths := make([]string, sc.NumColumns())
		for i := range paths {
			paths[i] = sc.Column(i).ColumnPath().String()
		}
		wr.plan = opts.Encodings.plan(opts.Table, paths)
	}
	return wr, nil
}

// start makes the file writer once the first batch is known (nil for a file without rows): columns the
// table's earlier files did not teach are judged on it (Encodings).
func (w *Writer) start(first arrow.RecordBatch) error {
	if w.fw != nil {
		return nil
	}
	props := []parquet.WriterProperty{
		parquet.WithCompression(w.codec),
		parquet.WithCompressionLevel(w.level),
		parquet.WithMaxRowGroupLength(w.opts.RowGroupRows),
		parquet.WithDictionaryDefault(true),
		// A column whose distinct values pass 128 KiB (ids, free text, random numbers) falls back to plain
		// encoding after a few thousand values instead of after the first megabyte. Columns of few distinct
		// values (codes, flags, names) stay dictionary-encoded.
		parquet.WithDictionaryPageSizeLimit(128 << 10),
		parquet.WithStats(true),
		parquet.WithCreatedBy("minipipe"),
		parquet.WithAllocator(memory.DefaultAllocator),
	}
	if w.opts.Encodings != nil {
		if w.plan == nil {
			w.plan = map[string]choice{}
		}
		for i, f := range w.schema.Fields() {
			if _, known := w.plan[f.Name]; known || first == nil {
				continue
			}
			if col := first.Column(i); col.Len()-col.NullN() < minLearnRows {
				continue // too few values to tell: the default (a dictionary), and nothing learned
			}
			n, distinct, width, ok := sampleDistinct(first.Column(i))
			if !ok {
				continue
			}
			if dictionaryPays(n, distinct, width) {
				w.plan[f.Name] = chooseDict
			} else {
				w.plan[f.Name] = choosePlain
				if w.sampledPlain == nil {
					w.sampledPlain = map[string]bool{}
				}
				w.sampledPlain[f.Name] = true
			}
		}
		for path, c := range w.plan {
			if c == choosePlain {
				props = append(props, parquet.WithDictionaryFor(path, false))
			}
		}
	}
	fw, err := newFileWriter(w.schema, w.out, parquet.NewWriterProperties(props...), w.arrProps)
	if err != nil {
		if werr := w.out.err.Load(); werr != nil && !errors.Is(err, *werr) {
			err = fmt.Errorf("%w: %w", err, *werr)
		}
		return err
	}
	for k, v := range w.meta {
		if err := fw.AppendKeyValueMetadata(k, v); err != nil {
			return err
		}
	}
	w.fw = fw
	return nil
}

// newFileWriter is pqarrow.NewFileWriter, which writes the file's magic number at once and panics when that
// write fails (a staging file on HDFS whose directory a newer owner removed): the panic becomes an error.
func newFileWriter(schema *arrow.Schema, out io.Writer, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties) (fw *pqarrow.FileWriter, err error) {
	defer func() {
		if r := recover(); r != nil {
			fw = nil
			if e, ok := r.(error); ok {
				err = fmt.Errorf("parquet writer: %w", e)
			} else {
				err = fmt.Errorf("parquet writer: %v", r)
			}
		}
	}()
	fw, err = pqarrow.NewFileWriter(schema, out, props, arrProps)
	if err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	return fw, nil
}

// Schema is the file's Arrow schema.
func (w *Writer) Schema() *arrow.Schema { return w.schema }

// RowError is a record the file cannot take (it does not decode, or a value is out of its column's range);
// nothing of it was appended and the file is intact.
type RowError struct{ Err error }

func (e *RowError) Error() string { return "the row cannot be written: " + e.Err.Error() }
func (e *RowError) Unwrap() error { return e.Err }

// Append decodes one Avro record into the next row. A record the file cannot take is refused with a
// *RowError and nothing of it stays appended: the file is intact. An error of the encoder (writing the
// file failed) comes back from a later Append, and from Close.
//
// A record is decoded once, straight into the builders (checking it first would read every record twice
// for the rare one that fails). When one fails part way, the batch's builders are dropped and its earlier
// rows decoded again from their payloads, which the writer keeps until the batch is handed on; the rest of
// that batch is then checked before it is appended, so rows are decoded at most twice however many records
// fail, and batches keep their size (a stream of alternating good and bad records still fills them).
func (w *Writer) Append(d *Decoder, payload []byte) error {
	if err := w.failed(); err != nil {
		return err
	}
	if w.careful {
		if err := d.Check(payload); err != nil {
			return &RowError{Err: err}
		}
	}
	if err := d.Append(payload, w.rb); err != nil {
		if rerr := w.redo(); rerr != nil {
			return rerr
		}
		return &RowError{Err: err}
	}
	w.kept = append(w.kept, keptRow{d, payload})
	w.rows++
	w.batch++
	w.bytes += len(payload)
	if w.batch >= w.opts.BatchRows || w.bytes >= w.opts.BatchBytes {
		return w.flushBatch()
	}
	return nil
}

// keptRow is a row of the batch being gathered: its payload aliases the caller's record, which stays
// unchanged (Kafka messages are not reused).
type keptRow struct {
	d       *Decoder
	payload []byte
}

// redo drops the builders of a batch with a partly appended row and appends its good rows again; the rest
// of the batch is checked before it is appended (careful).
func (w *Writer) redo() error {
	w.rb.Release() // its columns differ in length now: it cannot make a record
	w.rb = array.NewRecordBuilder(memory.DefaultAllocator, w.schema)
	w.reserve()
	for _, k := range w.kept {
		if err := k.d.Append(k.payload, w.rb); err != nil {
			// The row was appended before from the same bytes: only a bug gets here.
			err = fmt.Errorf("appending a row again after a refused one: %w", err)
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
			return err
		}
	}
	w.careful = true
	return nil
}

// reserve sizes the builders for a batch like the last one, with an eighth more room: a batch a little
// larger than the last would otherwise copy a whole buffer to double it.
func (w *Writer) reserve() {
	if w.lastRows == 0 {
		return
	}
	w.rb.Reserve(w.lastRows + w.lastRows/8)
	for i, f := range w.rb.Fields() {
		if i >= len(w.lastData) {
			break
		}
		n := w.lastData[i] + w.lastData[i]/8
		switch b := f.(type) {
		case *array.BinaryBuilder:
			b.ReserveData(n)
		case *array.StringBuilder:
			b.ReserveData(n)
		}
	}
}

// count adds a batch's strings and binaries to their columns' plain size (Options.Encodings).
func (w *Writer) count(rec arrow.RecordBatch) {
	if w.opts.Encodings == nil {
		return
	}
	if w.varBytes == nil {
		w.varBytes = make([]int64, rec.NumCols())
	}
	for i, col := range rec.Columns() {
		switch a := col.(type) {
		case *array.Binary:
			w.varBytes[i] += int64(len(a.ValueBytes())) + 4*int64(a.Len()-a.NullN())
		case *array.String:
			w.varBytes[i] += int64(len(a.ValueBytes())) + 4*int64(a.Len()-a.NullN())
		}
	}
}

// plainSize estimates what a column chunk's values would take plain: for fixed-width types their width (the
// column's type length for fixed-length byte arrays: decimals) times the values present; for a top-level
// string or binary column what count gathered over the whole file; 0 when unknown (nested byte arrays).
func (w *Writer) plainSize(cc *metadata.ColumnChunkMetaData, typeLength int) int64 {
	present := cc.NumValues()
	if st, err := cc.Statistics(); err == nil && st != nil && st.HasNullCount() {
		present -= st.NullCount()
	}
	switch cc.Type() {
	case parquet.Types.Int32, parquet.Types.Float:
		return 4 * present
	case parquet.Types.Int64, parquet.Types.Double:
		return 8 * present
	case parquet.Types.Int96:
		return 12 * present
	case parquet.Types.FixedLenByteArray:
		return int64(typeLength) * present
	case parquet.Types.ByteArray:
		path := cc.PathInSchema()
		if len(path) != 1 {
			return 0
		}
		idx := w.schema.FieldIndices(path[0])
		if len(idx) == 1 && len(w.varBytes) == w.schema.NumFields() {
			return w.varBytes[idx[0]]
		}
	}
	return 0
}

// learn tells the table's Encodings what the finished file showed (md), or, for a file that failed, was
// aborted or has no footer (nil), that its tries of a dictionary are over.
func (w *Writer) learn(md *metadata.FileMetaData) {
	if w.opts.Encodings == nil || w.learned {
		return
	}
	w.learned = true
	w.opts.Encodings.learn(w.opts.Table, md, w.plan, w.sampledPlain, w.plainSize)
}

// measure notes the size of a batch about to be handed to the encoder.
func (w *Writer) measure(rec arrow.RecordBatch) {
	w.count(rec)
	w.lastRows = int(rec.NumRows())
	if w.lastData == nil {
		w.lastData = make([]int, rec.NumCols())
	}
	w.lastMem = 0
	for i, col := range rec.Columns() {
		w.lastMem += dataMem(col.Data())
		switch a := col.(type) {
		case *array.Binary:
			w.lastData[i] = len(a.ValueBytes())
		case *array.String:
			w.lastData[i] = len(a.ValueBytes())
		}
	}
}

// dataMem is the memory of an array's buffers and children.
func dataMem(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Cap())
		}
	}
	for _, c := range d.Children() {
		n += dataMem(c)
	}
	// Dictionary arrays are not built here (dictionaries are the encoder's): an arrow.ArrayData interface
	// holding a nil *array.Data would not compare equal to nil.
	return n
}

// flushBatch hands the gathered rows to the encoder, starting it with the file's first full batch; the
// builders are then reserved for a batch like it, unless the file is closing.
func (w *Writer) flushBatch() error {
	if err := w.failed(); err != nil {
		return err
	}
	if w.batch == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	w.batches++
	w.batch, w.bytes, w.careful = 0, 0, false
	clear(w.kept) // let the payloads go
	w.kept = w.kept[:0]
	w.measure(rec)
	if !w.closed {
		w.reserve()
	}
	if w.queue == nil {
		if err := w.start(rec); err != nil {
			rec.Release()
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return err
		}
		w.queue, w.done = make(chan batch, 1), make(chan struct{})
		go w.encode()
	}
	w.inflight.Add(w.lastMem)
	w.queue <- batch{rec, w.lastMem}
	return nil
}

// batch is a record batch handed to the encoder, with its memory.
type batch struct {
	rec arrow.RecordBatch
	mem int64
}

// encode writes the batches it is handed into the file, in order; after an error it only drops them.
func (w *Writer) encode() {
	defer close(w.done)
	for b := range w.queue {
		if w.failed() == nil {
			if err := w.write(b.rec); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		b.rec.Release()
		w.inflight.Add(-b.mem)
	}
}

func (w *Writer) write(rec arrow.RecordBatch) error {
	if err := w.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("parquet write: %w", err)
	}
	if w.fw.RowGroupTotalBytesWritten() >= w.opts.RowGroupBytes {
		w.fw.NewBufferedRowGroup()
	}
	w.pending.Store(w.fw.RowGroupTotalBytesWritten())
	return nil
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stop waits for the encoder to finish what it was handed.
func (w *Writer) stop() {
	if w.queue != nil {
		close(w.queue)
		<-w.done
		w.queue = nil
	}
}

// Rows is the number of rows appended.
func (w *Writer) Rows() int64 { return w.rows }

// Bytes estimates the file's size so far: bytes written plus the encoded row group in memory (as of the
// last batch encoded).
func (w *Writer) Bytes() int64 { return w.out.n.Load() + w.pending.Load() }

// Buffered estimates the memory the file holds: its builders (reserved at the last batch's size; before
// the first batch, twice the Avro bytes gathered plus 8 bytes a value), the batches waiting for or in the
// encoder, the pages being filled (up to a data page per column, and about a batch in all), its open row
// group as compressed so far, and a fixed 8 KiB a column for the encoders' own state (column writers,
// dictionary hash tables).
func (w *Writer) Buffered() int64 {
	if w.closed {
		return 0
	}
	cols := int64(w.schema.NumFields())
	builders := w.lastMem
	if builders == 0 {
		builders = 2*int64(w.bytes) + 8*int64(w.batch)*cols
	}
	pages := min(cols*parquet.DefaultDataPageSize, w.lastMem)
	return builders + w.inflight.Load() + pages + w.pending.Load() + cols*8<<10
}

// Close flushes everything and writes the footer; it does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.failed()
	switch {
	case err != nil:
		// Nothing more is encoded: the builders may hold a partly appended row (of a batch that could
		// not be appended again), of which no record batch can be made.
	case w.queue == nil && w.batch > 0:
		// A file of less than one batch is written here: no goroutine for it.
		rec := w.rb.NewRecordBatch()
		w.count(rec)
		if err = w.start(rec); err == nil {
			err = w.write(rec)
		}
		rec.Release()
	default:
		err = w.flushBatch()
	}
	w.stop()
	w.rb.Release()
	if err == nil {
		err = w.failed()
	}
	if w.fw == nil && err == nil {
		err = w.start(nil) // a file without rows
	}
	if w.fw == nil {
		w.learn(nil)
		return err
	}
	if cerr := w.fw.Close(); err == nil {
		err = cerr
	}
	md, merr := w.fw.FileMetadata()
	if err != nil || merr != nil {
		md = nil
	}
	w.learn(md)
	return err
}

// Abort drops the file's buffers.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.learn(nil)
	w.closed = true
	w.stop()
	w.rb.Release()
}
