package parquet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ErrNotMergeable is a set of files whose columns cannot make one file: a column of two types no widening
// joins, a nested column that differs between them.
var ErrNotMergeable = errors.New("files cannot be merged")

// Merge writes the rows of Parquet files into one, file after file, in the order given: the columns of them
// all (the last file's first, in its order, then those only older files have), a column a file lacks null
// in its rows, numbers widened as the table's evolution widened them (int → long, float → double). The
// footer's key-value metadata is the last file's (without Arrow's stored schema) with meta over it (an empty
// value removes its key). It returns the rows written.
func Merge(ctx context.Context, w io.Writer, inputs [][]byte, meta map[string]string, opts Options) (int64, error) {
	opts.defaults()
	if len(inputs) == 0 {
		return 0, fmt.Errorf("%w: no files", ErrNotMergeable)
	}
	codec, err := Codec(opts.Compression)
	if err != nil {
		return 0, err
	}
	if err := CheckLevel(opts.Compression, opts.CompressionLevel); err != nil {
		return 0, err
	}
	level := compress.DefaultCompressionLevel
	if opts.CompressionLevel != 0 {
		level = opts.CompressionLevel
	}
	readers := make([]*file.Reader, len(inputs))
	schemas := make([]*arrow.Schema, len(inputs))
	for i, in := range inputs {
		r, err := file.NewParquetReader(bytes.NewReader(in))
		if err != nil {
			return 0, fmt.Errorf("file %d of %d: %w", i+1, len(inputs), err)
		}
		defer r.Close()
		fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: int64(opts.BatchRows)}, memory.DefaultAllocator)
		if err != nil {
			return 0, fmt.Errorf("file %d of %d: %w", i+1, len(inputs), err)
		}
		if schemas[i], err = fr.Schema(); err != nil {
			return 0, fmt.Errorf("file %d of %d: %w", i+1, len(inputs), err)
		}
		readers[i] = r
	}
	schema, err := unionSchema(schemas)
	if err != nil {
		return 0, err
	}
	kv := map[string]string{}
	if md := readers[len(readers)-1].MetaData().KeyValueMetadata(); md != nil {
		for i, k := range md.Keys() {
			if k != "ARROW:schema" {
				kv[k] = md.Values()[i]
			}
		}
	}
	for k, v := range meta {
		if v == "" {
			delete(kv, k) // not true of the merged file
			continue
		}
		kv[k] = v
	}
	props := parquet.NewWriterProperties(
		parquet.WithCompression(codec),
		parquet.WithCompressionLevel(level),
		parquet.WithMaxRowGroupLength(opts.RowGroupRows),
		parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryPageSizeLimit(128<<10),
		parquet.WithStats(true),
		parquet.WithCreatedBy("minipipe"),
		parquet.WithAllocator(memory.DefaultAllocator),
	)
	out := &countingWriter{w: w}
	fw, err := newFileWriter(schema, out, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return 0, err
	}
	for k, v := range kv {
		if err := fw.AppendKeyValueMetadata(k, v); err != nil {
			return 0, err
		}
	}
	var rows int64
	for i, r := range readers {
		n, err := copyRows(ctx, fw, r, schema, opts)
		rows += n
		if err == nil && n != r.NumRows() {
			err = fmt.Errorf("read %d rows of the %d its footer says", n, r.NumRows())
		}
		if err != nil {
			_ = fw.Close()
			return rows, fmt.Errorf("file %d of %d: %w", i+1, len(inputs), err)
		}
	}
	if err := fw.Close(); err != nil {
		if werr := out.err.Load(); werr != nil {
			err = fmt.Errorf("%w: %w", err, *werr)
		}
		return rows, err
	}
	return rows, nil
}

// copyRows appends one file's rows to fw, in the merged schema, starting a row group once the open one
// holds RowGroupRows rows or RowGroupBytes bytes.
func copyRows(ctx context.Context, fw *pqarrow.FileWriter, r *file.Reader, schema *arrow.Schema, opts Options) (int64, error) {
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: int64(opts.BatchRows)}, memory.DefaultAllocator)
	if err != nil {
		return 0, err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	var rows int64
	for rr.Next() {
		rec := rr.RecordBatch()
		conv, err := conform(ctx, rec, schema)
		if err != nil {
			return rows, err
		}
		if open, err := fw.RowGroupNumRows(); err == nil && open > 0 && (int64(open)+conv.NumRows() > opts.RowGroupRows || fw.RowGroupTotalBytesWritten() >= opts.RowGroupBytes) {
			fw.NewBufferedRowGroup()
		}
		err = fw.WriteBuffered(conv)
		rows += conv.NumRows()
		conv.Release()
		if err != nil {
			return rows, err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return rows, err
	}
	return rows, nil
}

// conform turns a batch into the merged schema: its columns by name, cast where the merged one is wider,
// null columns for those it lacks.
func conform(ctx context.Context, rec arrow.RecordBatch, schema *arrow.Schema) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	n := int(rec.NumRows())
	for i, f := range schema.Fields() {
		idx := rec.Schema().FieldIndices(f.Name)
		if len(idx) == 0 {
			cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, n)
			continue
		}
		col := rec.Column(idx[0])
		if arrow.TypeEqual(col.DataType(), f.Type) {
			col.Retain()
			cols[i] = col
			continue
		}
		cast, err := compute.CastArray(ctx, col, compute.SafeCastOptions(f.Type))
		if err != nil {
			return nil, fmt.Errorf("%w: column %s from %s to %s: %w", ErrNotMergeable, f.Name, col.DataType(), f.Type, err)
		}
		cols[i] = cast
	}
	return array.NewRecordBatch(schema, cols, int64(n)), nil
}

// unionSchema is the schema of the merged file (see Merge).
func unionSchema(schemas []*arrow.Schema) (*arrow.Schema, error) {
	last := schemas[len(schemas)-1]
	fields := append([]arrow.Field(nil), last.Fields()...)
	index := map[string]int{}
	for i, f := range fields {
		index[f.Name] = i
	}
	present := make([]int, len(fields))
	for _, s := range schemas {
		for _, f := range s.Fields() {
			i, ok := index[f.Name]
			if !ok {
				f.Nullable = true
				index[f.Name] = len(fields)
				fields = append(fields, f)
				present = append(present, 1)
				continue
			}
			present[i]++
			cur := &fields[i]
			if f.Nullable {
				cur.Nullable = true
			}
			if arrow.TypeEqual(cur.Type, f.Type) {
				continue
			}
			wider, ok := widerNumber(cur.Type, f.Type)
			if !ok {
				return nil, fmt.Errorf("%w: column %s is %s in one file and %s in another", ErrNotMergeable, f.Name, cur.Type, f.Type)
			}
			cur.Type = wider
		}
	}
	for i := range fields {
		if present[i] < len(schemas) {
			fields[i].Nullable = true
		}
	}
	md := last.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// widerNumber is the type both numbers fit, as the table's schema evolution widens them.
func widerNumber(a, b arrow.DataType) (arrow.DataType, bool) {
	ra, rb := numberRank(a), numberRank(b)
	if ra == 0 || rb == 0 {
		return nil, false
	}
	if ra == 3 && rb == 2 || ra == 2 && rb == 3 {
		return arrow.PrimitiveTypes.Float64, true // long and float: double
	}
	if ra >= rb {
		return a, true
	}
	return b, true
}

// FooterRows returns the rows of a Parquet file from its last bytes (which must hold its whole footer).
func FooterRows(tail []byte) (int64, error) {
	if len(tail) < 12 || string(tail[len(tail)-4:]) != "PAR1" {
		return 0, errors.New("not a Parquet file: no PAR1 at its end")
	}
	n := int64(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	if n <= 0 || n > int64(len(tail)-8) {
		return 0, fmt.Errorf("a Parquet footer of %d bytes: more than the %d bytes kept of the file's end", n, len(tail)-8)
	}
	md, err := metadata.NewFileMetaData(tail[int64(len(tail)-8)-n:len(tail)-8], nil)
	if err != nil {
		return 0, fmt.Errorf("the Parquet footer: %w", err)
	}
	return md.NumRows, nil
}
