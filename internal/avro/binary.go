package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/minipipe/minipipe/internal/jsonscan"
)

// Reader reads Avro binary. Every length and count is checked against what is left of the input before
// anything is allocated, so a hostile record cannot make it allocate more than its own size; items that
// take no bytes (nulls, empty records), which bytes cannot bound, are counted against a budget.
type Reader struct {
	B []byte
	P int

	budgeted bool
	items    int64 // items of arrays and maps this datum may still hold
	free     int64 // of which items that take no bytes
}

// MaxRecordItems bounds the items (array elements and map entries, at every level) one datum may hold,
// whatever its size: the work and memory of reading a record stay proportional to a configured cap. Set it
// once at startup (--max-record-items).
var MaxRecordItems int64 = 2_000_000

// ZeroWidthItemsPerByte bounds the items that take no bytes (an array of nulls or of empty records) by the
// size of the datum: a datum of n bytes may hold at most max(1024, n × this) of them. Without it 17 bytes
// can declare an array of 2^24 nulls, and a kilobyte a billion.
const ZeroWidthItemsPerByte = 8

// ErrTooManyItems is a datum that declares more items than its size or the configured cap allow.
var ErrTooManyItems = errors.New("avro: too many items")

// charge takes n items (zero width or not) from the datum's budget.
func (r *Reader) charge(n int64, zeroWidth bool) error {
	if !r.budgeted {
		r.budgeted = true
		r.items = MaxRecordItems
		r.free = max(1024, int64(len(r.B))*ZeroWidthItemsPerByte)
	}
	if n > r.items {
		return fmt.Errorf("%w: more than %d items in one record (--max-record-items)", ErrTooManyItems, MaxRecordItems)
	}
	r.items -= n
	if zeroWidth {
		if n > r.free {
			return fmt.Errorf("%w: more than %d items that take no bytes in a record of %d bytes", ErrTooManyItems,
				max(1024, int64(len(r.B))*ZeroWidthItemsPerByte), len(r.B))
		}
		r.free -= n
	}
	return nil
}

// ErrShort is a datum cut short.
var ErrShort = errors.New("avro: datum ends early")

// Len is what is left to read.
func (r *Reader) Len() int { return len(r.B) - r.P }

// Long reads a zig-zag varint.
func (r *Reader) Long() (int64, error) {
	v, n := binary.Varint(r.B[r.P:])
	if n <= 0 {
		if n == 0 {
			return 0, ErrShort
		}
		return 0, errors.New("avro: varint overflows 64 bits")
	}
	r.P += n
	return v, nil
}

// Int reads an int.
func (r *Reader) Int() (int32, error) {
	v, err := r.Long()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("avro: int %d out of range", v)
	}
	return int32(v), nil
}

// Bool reads a boolean.
func (r *Reader) Bool() (bool, error) {
	if r.P >= len(r.B) {
		return false, ErrShort
	}
	b := r.B[r.P]
	r.P++
	if b > 1 {
		return false, fmt.Errorf("avro: boolean byte %d", b)
	}
	return b == 1, nil
}

// Float reads a float.
func (r *Reader) Float() (float32, error) {
	if r.Len() < 4 {
		return 0, ErrShort
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(r.B[r.P:]))
	r.P += 4
	return v, nil
}

// Double reads a double.
func (r *Reader) Double() (float64, error) {
	if r.Len() < 8 {
		return 0, ErrShort
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.B[r.P:]))
	r.P += 8
	return v, nil
}

// Bytes reads length-prefixed bytes (also strings); the result aliases the input.
func (r *Reader) Bytes() ([]byte, error) {
	n, err := r.Long()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("avro: negative length %d", n)
	}
	if n > int64(r.Len()) {
		return nil, ErrShort
	}
	b := r.B[r.P : r.P+int(n)]
	r.P += int(n)
	return b, nil
}

// Fixed reads n bytes.
func (r *Reader) Fixed(n int) ([]byte, error) {
	if n > r.Len() {
		return nil, ErrShort
	}
	b := r.B[r.P : r.P+n]
	r.P += n
	return b, nil
}

// BlockCount reads the item count of an array or map block; a negative count is followed by the block's
// size in bytes, which is skipped over as Avro allows. minItemSize bounds the count by the bytes left; the
// count is charged to the datum's item budget (see MaxRecordItems).
func (r *Reader) BlockCount(minItemSize int) (int64, error) {
	n, err := r.Long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, errors.New("avro: invalid block count")
		}
		n = -n
		if _, err := r.Long(); err != nil { // block size in bytes
			return 0, err
		}
	}
	if minItemSize > 0 && n > int64(r.Len()/minItemSize) {
		return 0, ErrShort
	}
	if err := r.charge(n, minItemSize <= 0); err != nil {
		return 0, err
	}
	return n, nil
}

// MinSize is the fewest bytes a datum of s takes (0 for null and empty records).
func MinSize(s *Schema) int {
	switch s.Type {
	case Null:
		return 0
	case Float:
		return 4
	case Double:
		return 8
	case Fixed:
		return s.Size
	case Record:
		n := 0
		for _, f := range s.Fields {
			if f.Type == s { // recursion through a non-union field cannot terminate anyway
				continue
			}
			n += minSizeDepth(f.Type, 1)
		}
		return n
	default:
		return 1
	}
}

func minSizeDepth(s *Schema, depth int) int {
	if depth > 32 {
		return 0
	}
	if s.Type == Record {
		n := 0
		for _, f := range s.Fields {
			n += minSizeDepth(f.Type, depth+1)
		}
		return n
	}
	return MinSize(s)
}

// Skip reads past one datum of s, checking it is well formed.
func (r *Reader) Skip(s *Schema) error { return r.skip(s, 0) }

func (r *Reader) skip(s *Schema, depth int) error {
	if depth > MaxDepth {
		return errors.New("avro: datum nested too deeply")
	}
	switch s.Type {
	case Null:
		return nil
	case Boolean:
		_, err := r.Bool()
		return err
	case Int:
		_, err := r.Int()
		return err
	case Long:
		_, err := r.Long()
		return err
	case Float:
		_, err := r.Float()
		return err
	case Double:
		_, err := r.Double()
		return err
	case Bytes:
		b, err := r.Bytes()
		if err == nil && s.LogicalType == "decimal" {
			err = CheckDecimal(b, s.Precision)
		}
		return err
	case String:
		_, err := r.Bytes()
		return err
	case Fixed:
		b, err := r.Fixed(s.Size)
		if err == nil && s.LogicalType == "decimal" {
			err = CheckDecimal(b, s.Precision)
		}
		return err
	case Enum:
		i, err := r.Long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.Symbols)) {
			return fmt.Errorf("avro: enum index %d out of range for %s", i, s.FullName())
		}
		return nil
	case Array, Map:
		item, min := s.Items, 0
		if s.Type == Map {
			item = s.Values
			min = 1 + MinSize(item) // the key's length, then the value
		} else {
			min = MinSize(item)
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
				if s.Type == Map {
					if _, err := r.Bytes(); err != nil {
						return err
					}
				}
				if err := r.skip(item, depth+1); err != nil {
					return err
				}
			}
		}
	case Union:
		i, err := r.Long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.Branches)) {
			return fmt.Errorf("avro: union branch %d out of range", i)
		}
		return r.skip(s.Branches[i], depth+1)
	case Record:
		for _, f := range s.Fields {
			if err := r.skip(f.Type, depth+1); err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("avro: cannot read type %s", s.Type)
}

// Validate checks that payload is exactly one well-formed datum of s: every value within its declared
// bounds (a decimal within its precision), and no more items than MaxRecordItems and the datum's size
// allow.
func Validate(s *Schema, payload []byte) error {
	r := Reader{B: payload}
	if err := r.Skip(s); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("avro: %d bytes left after the datum", r.Len())
	}
	return nil
}

// FieldValue reads the value of one top-level field of a record datum: int64 for int and long (and the
// date, time and timestamp logical types), float64, string, []byte, bool, nil for null, and the symbol of
// an enum. Unions are unwrapped. found is false when the record has no such field.
func FieldValue(s *Schema, payload []byte, name string) (v any, ft *Schema, found bool, err error) {
	if s.Type != Record {
		return nil, nil, false, fmt.Errorf("not a record")
	}
	r := Reader{B: payload}
	for _, f := range s.Fields {
		if f.Name != name {
			if err := r.Skip(f.Type); err != nil {
				return nil, nil, false, err
			}
			continue
		}
		t := f.Type
		if t.Type == Union {
			i, err := r.Long()
			if err != nil {
				return nil, nil, true, err
			}
			if i < 0 || i >= int64(len(t.Branches)) {
				return nil, nil, true, fmt.Errorf("avro: union branch %d out of range", i)
			}
			t = t.Branches[i]
		}
		switch t.Type {
		case Null:
			return nil, t, true, nil
		case Boolean:
			b, err := r.Bool()
			return b, t, true, err
		case Int:
			i, err := r.Int()
			return int64(i), t, true, err
		case Long:
			i, err := r.Long()
			return i, t, true, err
		case Float:
			f, err := r.Float()
			return float64(f), t, true, err
		case Double:
			f, err := r.Double()
			return f, t, true, err
		case String:
			b, err := r.Bytes()
			return string(b), t, true, err
		case Bytes:
			b, err := r.Bytes()
			return b, t, true, err
		case Fixed:
			b, err := r.Fixed(t.Size)
			return b, t, true, err
		case Enum:
			i, err := r.Long()
			if err != nil {
				return nil, t, true, err
			}
			if i < 0 || i >= int64(len(t.Symbols)) {
				return nil, t, true, fmt.Errorf("avro: enum index %d out of range", i)
			}
			return t.Symbols[i], t, true, nil
		default:
			return nil, t, true, fmt.Errorf("field %s is a %s, not a scalar", name, t.Type)
		}
	}
	return nil, nil, false, nil
}

// TimeOf interprets a field value as an instant: timestamp-millis/-micros/-nanos (and their local
// variants, read as UTC), a date, a plain long as epoch milliseconds, or an RFC 3339 string.
func TimeOf(v any, t *Schema) (time.Time, error) {
	switch x := v.(type) {
	case int64:
		switch t.LogicalType {
		case "timestamp-micros", "local-timestamp-micros":
			return time.UnixMicro(x).UTC(), nil
		case "timestamp-nanos", "local-timestamp-nanos":
			return time.Unix(0, x).UTC(), nil
		case "date":
			return time.Unix(x*86400, 0).UTC(), nil
		default:
			return time.UnixMilli(x).UTC(), nil
		}
	case string:
		ts, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", x)
		}
		return ts.UTC(), nil
	case nil:
		return time.Time{}, errors.New("the timestamp field is null")
	}
	return time.Time{}, fmt.Errorf("a %s cannot be a timestamp", t.Type)
}

// EncodeDefault encodes a field default (its JSON, as in the schema) to Avro binary of type s: the value of
// a union default belongs to the union's first branch.
func EncodeDefault(s *Schema, defaultJSON []byte) ([]byte, error) {
	var e jsonEncoder
	sc := jsonscan.New(defaultJSON)
	out, err := e.encode(nil, s, sc, true, 0)
	if err != nil {
		return nil, err
	}
	if !sc.AtEnd() {
		return nil, errors.New("unexpected data after the default")
	}
	return out, nil
}
