package parquet

import (
	"fmt"
	"math"
	"math/big"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/minipipe/minipipe/internal/avro"
)

// appendFn reads one datum from r and appends it to b. With b nil it only checks the datum, exactly as
// appending would: every error appending can meet, checking meets first (Decoder.Check).
type appendFn func(r *avro.Reader, b array.Builder) error

// Decoder reads Avro binary records written with one schema into the columns of a file whose schema may be
// newer: fields are matched by name (or the file field's aliases), a field the writer lacks takes its
// default (or null), a field the file lacks is skipped, and values are promoted (int → long, float, double;
// long → float, double; float → double; string ↔ bytes) as Avro schema resolution does.
type Decoder struct {
	cols   *arrow.Schema
	writer *avro.Schema
	steps  []step    // one per writer field, in writer order
	fill   []fillCol // file columns the writer lacks
}

type step struct {
	col  int      // file column, or -1 to skip
	fn   appendFn // when col >= 0
	skip *avro.Schema
}

type fillCol struct {
	col  int
	dflt []byte // binary of the default, nil for null
	fn   appendFn
}

// NewDecoder compiles the resolution of writer records into the columns of file (an Arrow schema made by
// ArrowSchema from fileSchema, with the same dropped fields).
func NewDecoder(writer, fileSchema *avro.Schema, cols *arrow.Schema) (*Decoder, error) {
	if writer.Type != avro.Record || fileSchema.Type != avro.Record {
		return nil, fmt.Errorf("records only")
	}
	colIdx := map[string]int{}
	for i, f := range cols.Fields() {
		colIdx[f.Name] = i
	}
	d := &Decoder{writer: writer, cols: cols}
	used := map[int]string{}
	for _, wf := range writer.Fields {
		rf := readerField(fileSchema, wf.Name)
		col, ok := -1, false
		if rf != nil {
			col, ok = colIdx[rf.Name]
		}
		if !ok {
			d.steps = append(d.steps, step{col: -1, skip: wf.Type})
			continue
		}
		if other, dup := used[col]; dup {
			// One by its name, the other by an alias: every row would fill the column twice.
			return nil, fmt.Errorf("fields %s and %s of the writer's schema both resolve to field %s of the file's schema", other, wf.Name, rf.Name)
		}
		fn, err := compile(wf.Type, rf.Type, cols.Field(col).Type)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", wf.Name, err)
		}
		used[col] = wf.Name
		d.steps = append(d.steps, step{col: col, fn: fn})
	}
	for _, rf := range fileSchema.Fields {
		col, ok := colIdx[rf.Name]
		if _, dup := used[col]; !ok || dup {
			continue
		}
		fc := fillCol{col: col}
		if rf.HasDefault && string(rf.Default) != "null" {
			bin, err := avro.EncodeDefault(rf.Type, rf.Default)
			if err == nil {
				fn, err := compile(rf.Type, rf.Type, cols.Field(col).Type)
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", rf.Name, err)
				}
				if err := fn(&avro.Reader{B: bin}, nil); err != nil {
					return nil, fmt.Errorf("field %s: its default cannot be written: %w", rf.Name, err)
				}
				fc.dflt, fc.fn = bin, fn
			}
		}
		d.fill = append(d.fill, fc)
	}
	return d, nil
}

// readerField finds the file's field for a writer field: by name, then by the file field's aliases.
func readerField(s *avro.Schema, name string) *avro.Field {
	if f := s.FieldByName(name); f != nil {
		return f
	}
	for _, f := range s.Fields {
		for _, a := range f.Aliases {
			if a == name {
				return f
			}
		}
	}
	return nil
}

// Columns is the Arrow schema of the file the decoder writes into.
func (d *Decoder) Columns() *arrow.Schema { return d.cols }

// Append decodes one record and appends it as a row. An error leaves the builders partly appended: the
// caller drops them (Writer.Append rebuilds the batch) or calls Check first.
func (d *Decoder) Append(payload []byte, rb *array.RecordBuilder) error {
	return d.run(payload, rb)
}

// Check reads one record exactly as Append would, appending nothing: nil means Append cannot fail on it.
// It is the one definition of what a table can take, used by validation and by the commit stage alike.
func (d *Decoder) Check(payload []byte) error {
	return d.run(payload, nil)
}

func (d *Decoder) run(payload []byte, rb *array.RecordBuilder) error {
	field := func(col int) array.Builder {
		if rb == nil {
			return nil
		}
		return rb.Field(col)
	}
	r := avro.Reader{B: payload}
	for i := range d.steps {
		s := &d.steps[i]
		if s.col < 0 {
			if err := r.Skip(s.skip); err != nil {
				return fmt.Errorf("%s: %w", d.writer.Fields[i].Name, err)
			}
			continue
		}
		if err := s.fn(&r, field(s.col)); err != nil {
			return fmt.Errorf("%s: %w", d.writer.Fields[i].Name, err)
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d bytes left after the record", r.Len())
	}
	if rb == nil {
		return nil // defaults were checked when the decoder was compiled
	}
	for _, f := range d.fill {
		if f.fn == nil {
			rb.Field(f.col).AppendNull()
			continue
		}
		dr := avro.Reader{B: f.dflt}
		if err := f.fn(&dr, rb.Field(f.col)); err != nil {
			return err
		}
	}
	return nil
}

// compile builds the reader of writer-typed data into a builder of Arrow type dt, made from reader type rt.
func compile(w, rt *avro.Schema, dt arrow.DataType) (appendFn, error) {
	return compileDepth(w, rt, dt, 0)
}

func compileDepth(w, rt *avro.Schema, dt arrow.DataType, depth int) (appendFn, error) {
	if depth > 64 {
		return nil, fmt.Errorf("schema nested too deeply")
	}
	// Unions on either side.
	if w.Type == avro.Union {
		fns := make([]appendFn, len(w.Branches))
		for i, wb := range w.Branches {
			if wb.Type == avro.Null {
				continue
			}
			target, member, err := unionTarget(wb, rt)
			if err != nil {
				return nil, err
			}
			mdt := dt
			if member >= 0 {
				mdt = dt.(*arrow.StructType).Field(member).Type
			}
			fn, err := compileDepth(wb, target, mdt, depth+1)
			if err != nil {
				return nil, err
			}
			if member >= 0 {
				fn = intoMember(fn, member)
			}
			fns[i] = fn
		}
		return func(r *avro.Reader, b array.Builder) error {
			i, err := r.Long()
			if err != nil {
				return err
			}
			if i < 0 || i >= int64(len(fns)) {
				return fmt.Errorf("union branch %d out of range", i)
			}
			if fns[i] == nil {
				if b != nil {
					b.AppendNull()
				}
				return nil
			}
			return fns[i](r, b)
		}, nil
	}
	if rt.Type == avro.Union {
		target, member, err := unionTarget(w, rt)
		if err != nil {
			return nil, err
		}
		if member >= 0 {
			fn, err := compileDepth(w, target, dt.(*arrow.StructType).Field(member).Type, depth+1)
			if err != nil {
				return nil, err
			}
			return intoMember(fn, member), nil
		}
		return compileDepth(w, target, dt, depth+1)
	}
	return compileValue(w, rt, dt, depth)
}

// unionTarget picks the reader type a writer (non-union) type resolves to: the reader itself when it is not
// a union, else its first branch that can read the writer; member is that branch's index among the
// non-null branches when the reader union is stored as a struct of members, -1 otherwise.
func unionTarget(w, rt *avro.Schema) (*avro.Schema, int, error) {
	if rt.Type != avro.Union {
		return rt, -1, nil
	}
	asStruct := rt.NonNull() == nil
	member := -1
	for _, b := range rt.Branches {
		if b.Type != avro.Null {
			member++
		}
		if b.Type == avro.Null {
			continue
		}
		if avro.Compatible(b, w) {
			if !asStruct {
				return b, -1, nil
			}
			return b, member, nil
		}
	}
	return nil, -1, fmt.Errorf("no branch of %s can read a %s", rt.TypeName(), w.TypeName())
}

func intoMember(fn appendFn, member int) appendFn {
	return func(r *avro.Reader, b array.Builder) error {
		if b == nil {
			return fn(r, nil)
		}
		sb := b.(*array.StructBuilder)
		sb.Append(true)
		for i := 0; i < sb.NumField(); i++ {
			if i == member {
				if err := fn(r, sb.FieldBuilder(i)); err != nil {
					return err
				}
				continue
			}
			sb.FieldBuilder(i).AppendNull()
		}
		return nil
	}
}

func compileValue(w, rt *avro.Schema, dt arrow.DataType, depth int) (appendFn, error) {
	switch dt.ID() {
	case arrow.BOOL:
		if w.Type == avro.Null {
			return func(r *avro.Reader, b array.Builder) error {
				if b != nil {
					b.AppendNull()
				}
				return nil
			}, nil
		}
		if w.Type != avro.Boolean {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Bool()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.BooleanBuilder).Append(v)
			return nil
		}, nil
	case arrow.INT32:
		if w.Type != avro.Int {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Int()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Int32Builder).Append(v)
			return nil
		}, nil
	case arrow.INT64:
		if w.Type != avro.Int && w.Type != avro.Long {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Long()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Int64Builder).Append(v)
			return nil
		}, nil
	case arrow.FLOAT32, arrow.FLOAT64:
		read, err := numberReader(w)
		if err != nil {
			return nil, err
		}
		if dt.ID() == arrow.FLOAT32 {
			return func(r *avro.Reader, b array.Builder) error {
				v, err := read(r)
				if err != nil {
					return err
				}
				if b == nil {
					return nil
				}
				b.(*array.Float32Builder).Append(float32(v))
				return nil
			}, nil
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := read(r)
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Float64Builder).Append(v)
			return nil
		}, nil
	case arrow.STRING:
		if rt.LogicalType == "decimal" && (w.Type == avro.Bytes || w.Type == avro.Fixed) {
			// Wider than 38 digits: exact text, at the reader's scale and within its precision.
			scale, precision, shift := rt.Scale, rt.Precision, decimalShift(w, rt)
			readRaw := rawReader(w)
			return func(r *avro.Reader, b array.Builder) error {
				raw, err := readRaw(r)
				if err != nil {
					return err
				}
				v, err := decimalValue(raw, shift, precision)
				if err != nil || b == nil {
					return err
				}
				b.(*array.StringBuilder).Append(decimalText(v, scale))
				return nil
			}, nil
		}
		switch w.Type {
		case avro.String, avro.Bytes:
			return func(r *avro.Reader, b array.Builder) error {
				v, err := r.Bytes()
				if err != nil {
					return err
				}
				if b == nil {
					return nil
				}
				b.(*array.StringBuilder).BinaryBuilder.Append(v)
				return nil
			}, nil
		case avro.Enum:
			symbols := w.Symbols
			resolved := make([]string, len(symbols))
			for i, s := range symbols {
				resolved[i] = s
				if rt.Type == avro.Enum && !contains(rt.Symbols, s) && rt.HasEnumDef {
					resolved[i] = rt.EnumDefault
				}
			}
			return func(r *avro.Reader, b array.Builder) error {
				i, err := r.Long()
				if err != nil {
					return err
				}
				if i < 0 || i >= int64(len(resolved)) {
					return fmt.Errorf("enum index %d out of range", i)
				}
				if b == nil {
					return nil
				}
				b.(*array.StringBuilder).Append(resolved[i])
				return nil
			}, nil
		}
	case arrow.BINARY:
		if w.Type != avro.Bytes && w.Type != avro.String {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Bytes()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.BinaryBuilder).Append(v)
			return nil
		}, nil
	case arrow.FIXED_SIZE_BINARY:
		if w.Type != avro.Fixed || w.Size != dt.(*arrow.FixedSizeBinaryType).ByteWidth {
			break
		}
		n := w.Size
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Fixed(n)
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.FixedSizeBinaryBuilder).Append(v)
			return nil
		}, nil
	case arrow.DATE32:
		if w.Type != avro.Int {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Int()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Date32Builder).Append(arrow.Date32(v))
			return nil
		}, nil
	case arrow.TIME32:
		if w.Type != avro.Int {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Int()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Time32Builder).Append(arrow.Time32(v))
			return nil
		}, nil
	case arrow.TIME64:
		if w.Type != avro.Long {
			break
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Long()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.Time64Builder).Append(arrow.Time64(v))
			return nil
		}, nil
	case arrow.TIMESTAMP:
		if w.Type != avro.Long && w.Type != avro.Int {
			break
		}
		div := int64(1)
		if w.LogicalType == "timestamp-nanos" || w.LogicalType == "local-timestamp-nanos" {
			div = 1000 // stored as microseconds
		}
		if dt.(*arrow.TimestampType).Unit == arrow.Millisecond && (w.LogicalType == "timestamp-micros" || w.LogicalType == "local-timestamp-micros") {
			div = 1000
		}
		mul := int64(1)
		if dt.(*arrow.TimestampType).Unit == arrow.Microsecond && (w.LogicalType == "timestamp-millis" || w.LogicalType == "local-timestamp-millis") {
			mul = 1000
		}
		return func(r *avro.Reader, b array.Builder) error {
			v, err := r.Long()
			if err != nil {
				return err
			}
			if b == nil {
				return nil
			}
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(floorDiv(v, div) * mul))
			return nil
		}, nil
	case arrow.DECIMAL128:
		if w.Type != avro.Bytes && w.Type != avro.Fixed {
			break
		}
		shift, precision := decimalShift(w, rt), int(dt.(*arrow.Decimal128Type).Precision)
		readRaw := rawReader(w)
		return func(r *avro.Reader, b array.Builder) error {
			raw, err := readRaw(r)
			if err != nil {
				return err
			}
			if shift == 0 {
				// The common case, without big integers: the column's precision bounds the value.
				if err := avro.CheckDecimal(raw, precision); err != nil {
					return err
				}
			}
			n, err := decimal128FromBytes(raw, shift, precision)
			if err != nil || b == nil {
				return err
			}
			b.(*array.Decimal128Builder).Append(n)
			return nil
		}, nil
	case arrow.LIST:
		if w.Type != avro.Array || rt.Type != avro.Array {
			break
		}
		elem := dt.(*arrow.ListType).Elem()
		item, err := compileDepth(w.Items, rt.Items, elem, depth+1)
		if err != nil {
			return nil, err
		}
		min := avro.MinSize(w.Items)
		return func(r *avro.Reader, b array.Builder) error {
			var vb array.Builder
			if b != nil {
				lb := b.(*array.ListBuilder)
				lb.Append(true)
				vb = lb.ValueBuilder()
			}
			for {
				n, err := r.BlockCount(min)
				if err != nil {
					return err
				}
				if n == 0 {
					return nil
				}
				for i := int64(0); i < n; i++ {
					if err := item(r, vb); err != nil {
						return err
					}
				}
			}
		}, nil
	case arrow.MAP:
		if w.Type != avro.Map || rt.Type != avro.Map {
			break
		}
		val, err := compileDepth(w.Values, rt.Values, dt.(*arrow.MapType).ItemType(), depth+1)
		if err != nil {
			return nil, err
		}
		min := 1 + avro.MinSize(w.Values)
		return func(r *avro.Reader, b array.Builder) error {
			var kb *array.StringBuilder
			var ib array.Builder
			if b != nil {
				mb := b.(*array.MapBuilder)
				mb.Append(true)
				kb = mb.KeyBuilder().(*array.StringBuilder)
				ib = mb.ItemBuilder()
			}
			for {
				n, err := r.BlockCount(min)
				if err != nil {
					return err
				}
				if n == 0 {
					return nil
				}
				for i := int64(0); i < n; i++ {
					k, err := r.Bytes()
					if err != nil {
						return err
					}
					if kb != nil {
						kb.BinaryBuilder.Append(k)
					}
					if err := val(r, ib); err != nil {
						return err
					}
				}
			}
		}, nil
	case arrow.STRUCT:
		if w.Type != avro.Record || rt.Type != avro.Record {
			break
		}
		st := dt.(*arrow.StructType)
		type sub struct {
			idx  int
			fn   appendFn
			skip *avro.Schema
		}
		var subs []sub
		used := map[int]bool{}
		for _, wf := range w.Fields {
			rf := readerField(rt, wf.Name)
			if rf == nil {
				subs = append(subs, sub{idx: -1, skip: wf.Type})
				continue
			}
			idx := rf.Index
			fn, err := compileDepth(wf.Type, rf.Type, st.Field(idx).Type, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", wf.Name, err)
			}
			used[idx] = true
			subs = append(subs, sub{idx: idx, fn: fn})
		}
		type fill struct {
			idx  int
			dflt []byte
			fn   appendFn
		}
		var fills []fill
		for _, rf := range rt.Fields {
			if used[rf.Index] {
				continue
			}
			fl := fill{idx: rf.Index}
			if rf.HasDefault && string(rf.Default) != "null" {
				if bin, err := avro.EncodeDefault(rf.Type, rf.Default); err == nil {
					if fn, err := compileDepth(rf.Type, rf.Type, st.Field(rf.Index).Type, depth+1); err == nil {
						if err := fn(&avro.Reader{B: bin}, nil); err != nil {
							return nil, fmt.Errorf("%s: its default cannot be written: %w", rf.Name, err)
						}
						fl.dflt, fl.fn = bin, fn
					}
				}
			}
			fills = append(fills, fl)
		}
		return func(r *avro.Reader, b array.Builder) error {
			if b == nil {
				for _, s := range subs {
					if s.idx < 0 {
						if err := r.Skip(s.skip); err != nil {
							return err
						}
					} else if err := s.fn(r, nil); err != nil {
						return err
					}
				}
				return nil
			}
			sb := b.(*array.StructBuilder)
			sb.Append(true)
			for _, s := range subs {
				if s.idx < 0 {
					if err := r.Skip(s.skip); err != nil {
						return err
					}
					continue
				}
				if err := s.fn(r, sb.FieldBuilder(s.idx)); err != nil {
					return err
				}
			}
			for _, f := range fills {
				if f.fn == nil {
					sb.FieldBuilder(f.idx).AppendNull()
					continue
				}
				dr := avro.Reader{B: f.dflt}
				if err := f.fn(&dr, sb.FieldBuilder(f.idx)); err != nil {
					return err
				}
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("cannot read a %s written as %s into %s", rt.TypeName(), w.TypeName(), dt)
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func floorDiv(a, b int64) int64 {
	if b == 1 {
		return a
	}
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func numberReader(w *avro.Schema) (func(r *avro.Reader) (float64, error), error) {
	switch w.Type {
	case avro.Int:
		return func(r *avro.Reader) (float64, error) { v, err := r.Int(); return float64(v), err }, nil
	case avro.Long:
		return func(r *avro.Reader) (float64, error) { v, err := r.Long(); return float64(v), err }, nil
	case avro.Float:
		return func(r *avro.Reader) (float64, error) { v, err := r.Float(); return float64(v), err }, nil
	case avro.Double:
		return func(r *avro.Reader) (float64, error) { return r.Double() }, nil
	}
	return nil, fmt.Errorf("a %s is not a number", w.TypeName())
}

// decimalShift is the power of ten that takes a writer's unscaled decimal to the reader's scale.
func decimalShift(w, rt *avro.Schema) int {
	if w.LogicalType == "decimal" && rt.LogicalType == "decimal" {
		return rt.Scale - w.Scale
	}
	return 0
}

func rawReader(w *avro.Schema) func(r *avro.Reader) ([]byte, error) {
	if w.Type == avro.Fixed {
		n := w.Size
		return func(r *avro.Reader) ([]byte, error) { return r.Fixed(n) }
	}
	return func(r *avro.Reader) ([]byte, error) { return r.Bytes() }
}

// decimalValue is the unscaled value rescaled by 10^shift, checked against the precision it is written at.
// A value far too long for it is refused before any big arithmetic, so a hostile one costs nothing.
func decimalValue(raw []byte, shift, precision int) (*big.Int, error) {
	if shift == 0 {
		if err := avro.CheckDecimal(raw, precision); err != nil {
			return nil, err
		}
		return scaled(raw, 0), nil
	}
	// n significant bytes hold a value of at least 2^(8(n-1)-1), more than (8(n-1)-1)·log10(2) digits.
	sig := avro.SignificantBytes(raw)
	if float64(8*(len(sig)-1)-1)*math.Log10(2) >= float64(precision+max(-shift, 0)) {
		return nil, fmt.Errorf("%w: a value of %d significant bytes", avro.ErrDecimalRange, len(sig))
	}
	v := scaled(raw, shift)
	if len(new(big.Int).Abs(v).String()) > precision {
		return nil, fmt.Errorf("%w: rescaled by 10^%d it has more than the %d digits of its precision", avro.ErrDecimalRange, shift, precision)
	}
	return v, nil
}

// decimal128FromBytes reads Avro's big-endian two's-complement unscaled value, rescaled by 10^shift; it must
// fit precision digits (checked already when shift is 0).
func decimal128FromBytes(raw []byte, shift, precision int) (decimal128.Num, error) {
	if len(raw) == 0 {
		return decimal128.Num{}, nil
	}
	if shift == 0 {
		raw = avro.SignificantBytes(raw)
		var hi int64
		var lo uint64
		neg := raw[0]&0x80 != 0
		if neg {
			hi, lo = -1, ^uint64(0)
		}
		for _, c := range raw {
			hi = hi<<8 | int64(lo>>56)
			lo = lo<<8 | uint64(c)
		}
		return decimal128.New(hi, lo), nil
	}
	v, err := decimalValue(raw, shift, precision)
	if err != nil {
		return decimal128.Num{}, err
	}
	return decimal128.FromBigInt(v), nil
}

// decimalText renders an unscaled value with scale digits after the point.
func decimalText(v *big.Int, scale int) string {
	s := new(big.Int).Abs(v).String()
	if scale > 0 {
		for len(s) <= scale {
			s = "0" + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if v.Sign() < 0 {
		s = "-" + s
	}
	return s
}

func scaled(raw []byte, shift int) *big.Int {
	v := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(raw))*8))
	}
	switch {
	case shift > 0:
		v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(shift)), nil))
	case shift < 0:
		v.Quo(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-shift)), nil))
	}
	return v
}
