package avro

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/minipipe/minipipe/internal/jsonscan"
)

// The REST edge's hot path: Avro's JSON encoding read straight into Avro binary, without the maps of
// interfaces a generic decoder builds. It follows the Avro specification's JSON encoding as Avro Java's
// JsonDecoder reads it: a non-null union value is wrapped as {"<type name>": value} (the full name of a
// named type; its unqualified name is accepted too when unambiguous), bytes and fixed are strings whose
// code points are the byte values, a record's fields may come in any order and missing ones take their
// defaults. A field default is the unwrapped value of a union's first branch, as the specification says.

// jsonEncoder holds scratch space reused across one datum.
type jsonEncoder struct {
	scratch [][]byte // one buffer per nesting level, for array and map blocks
	str     []byte   // string unescaping buffer
}

// DataPathError locates a datum error.
type dataPathError struct {
	path string
	msg  string
	err  error // the cause, when it is one of the package's errors
}

func (e *dataPathError) Unwrap() error { return e.err }

func (e *dataPathError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return strings.TrimPrefix(e.path, ".") + ": " + e.msg
}

func derr(path, format string, args ...any) error {
	return &dataPathError{path: path, msg: fmt.Sprintf(format, args...)}
}

// within prefixes the location of an error found inside a field, item or map value. Paths are built only
// on the way out of an error, so that the happy path spends nothing on them.
func within(err error, segment string) error {
	if pe, ok := err.(*dataPathError); ok {
		pe.path = segment + pe.path
		return pe
	}
	return err
}

// AppendBinaryFromJSON decodes one datum in Avro's JSON encoding and appends its binary encoding to dst.
func (c *Codec) AppendBinaryFromJSON(dst, text []byte) ([]byte, error) {
	s := jsonscan.New(text)
	var e jsonEncoder
	out, err := e.encode(dst, c.Schema, s, false, 0)
	if err != nil {
		return dst, &DataError{Err: err}
	}
	if !s.AtEnd() {
		return dst, &DataError{Err: fmt.Errorf("unexpected data after the value at byte %d", s.Pos)}
	}
	return out, nil
}

func appendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

func describeJSON(k jsonscan.Kind) string { return k.String() }

func (e *jsonEncoder) scratchAt(depth int) []byte {
	for len(e.scratch) <= depth {
		e.scratch = append(e.scratch, nil)
	}
	return e.scratch[depth][:0]
}

// encode writes the value at s as schema t. In default mode (a field default) unions are not wrapped and
// take their first branch.
func (e *jsonEncoder) encode(dst []byte, t *Schema, s *jsonscan.Scanner, dflt bool, depth int) ([]byte, error) {
	const path = ""
	if depth > MaxDepth {
		return nil, derr(path, "nested deeper than %d levels", MaxDepth)
	}
	k := s.Peek()
	switch t.Type {
	case Null:
		if k != jsonscan.Null {
			return nil, derr(path, "expected null, found %s", describeJSON(k))
		}
		return dst, s.Literal("null")
	case Boolean:
		switch k {
		case jsonscan.True:
			return append(dst, 1), s.Literal("true")
		case jsonscan.False:
			return append(dst, 0), s.Literal("false")
		}
		return nil, derr(path, "expected a boolean, found %s", describeJSON(k))
	case Int, Long:
		if k != jsonscan.Number {
			return nil, derr(path, "expected %s, found %s", withArticle(t.Type), describeJSON(k))
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if t.Type == Int {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		v, err := s.Int(lo, hi)
		if err != nil {
			if _, ok := err.(*jsonscan.SyntaxError); ok {
				return nil, err
			}
			return nil, derr(path, "not %s: %v", withArticle(t.Type), err)
		}
		return appendVarint(dst, v), nil
	case Float, Double:
		var f float64
		switch k {
		case jsonscan.Number:
			v, err := s.Float()
			if err != nil {
				if _, ok := err.(*jsonscan.SyntaxError); ok {
					return nil, err
				}
				return nil, derr(path, "not %s: %v", withArticle(t.Type), err)
			}
			f = v
		case jsonscan.String: // Avro Java writes non-finite values as strings
			str, err := s.String(e.str)
			if err != nil {
				return nil, err
			}
			switch string(str) {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				return nil, derr(path, "expected %s, found the string %q", withArticle(t.Type), truncate(string(str)))
			}
		default:
			return nil, derr(path, "expected %s, found %s", withArticle(t.Type), describeJSON(k))
		}
		if t.Type == Float {
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
				return nil, derr(path, "%v is out of the range of a float", f)
			}
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case String:
		if k != jsonscan.String {
			return nil, derr(path, "expected a string, found %s", describeJSON(k))
		}
		str, err := s.String(e.str)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(str) {
			return nil, derr(path, "string is not valid UTF-8")
		}
		dst = appendVarint(dst, int64(len(str)))
		return append(dst, str...), nil
	case Bytes, Fixed:
		if k != jsonscan.String {
			return nil, derr(path, "expected a string of bytes, found %s", describeJSON(k))
		}
		str, err := s.String(e.str)
		if err != nil {
			return nil, err
		}
		n := utf8.RuneCount(str)
		if t.Type == Fixed {
			if n != t.Size {
				return nil, derr(path, "fixed %s needs %d bytes, found %d", t.FullName(), t.Size, n)
			}
		} else {
			dst = appendVarint(dst, int64(n))
		}
		start := len(dst)
		for i := 0; i < len(str); {
			r, size := utf8.DecodeRune(str[i:])
			if r > 0xff || (r == utf8.RuneError && size == 1) {
				return nil, derr(path, "bytes are written as characters U+0000 to U+00FF, found %U", r)
			}
			dst = append(dst, byte(r))
			i += size
		}
		if t.LogicalType == "decimal" {
			if err := CheckDecimal(dst[start:], t.Precision); err != nil {
				e := derr(path, "decimal(%d,%d): %v", t.Precision, t.Scale, err).(*dataPathError)
				e.err = err
				return nil, e
			}
		}
		return dst, nil
	case Enum:
		if k != jsonscan.String {
			return nil, derr(path, "expected a symbol of %s, found %s", t.FullName(), describeJSON(k))
		}
		str, err := s.String(e.str)
		if err != nil {
			return nil, err
		}
		for i, sym := range t.Symbols {
			if sym == string(str) {
				return appendVarint(dst, int64(i)), nil
			}
		}
		return nil, derr(path, "%q is not a symbol of %s", truncate(string(str)), t.FullName())
	case Array:
		if k != jsonscan.Array {
			return nil, derr(path, "expected an array, found %s", describeJSON(k))
		}
		empty, err := s.ArrayStart()
		if err != nil {
			return nil, err
		}
		if empty {
			return append(dst, 0), nil
		}
		buf := e.scratchAt(depth)
		n := 0
		for {
			buf, err = e.encode(buf, t.Items, s, dflt, depth+1)
			if err != nil {
				return nil, within(err, fmt.Sprintf("[%d]", n))
			}
			n++
			more, err := s.More(']')
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
		e.scratch[depth] = buf
		dst = appendVarint(dst, int64(n))
		dst = append(dst, buf...)
		return append(dst, 0), nil
	case Map:
		if k != jsonscan.Object {
			return nil, derr(path, "expected an object (a map), found %s", describeJSON(k))
		}
		empty, err := s.ObjectStart()
		if err != nil {
			return nil, err
		}
		if empty {
			return append(dst, 0), nil
		}
		buf := e.scratchAt(depth)
		n := 0
		for {
			key, err := s.Key(e.str)
			if err != nil {
				return nil, err
			}
			if !utf8.Valid(key) {
				return nil, derr(path, "map key is not valid UTF-8")
			}
			buf = appendVarint(buf, int64(len(key)))
			buf = append(buf, key...)
			buf, err = e.encode(buf, t.Values, s, dflt, depth+1)
			if err != nil {
				return nil, within(err, "."+string(key))
			}
			n++
			more, err := s.More('}')
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
		e.scratch[depth] = buf
		dst = appendVarint(dst, int64(n))
		dst = append(dst, buf...)
		return append(dst, 0), nil
	case Union:
		return e.union(dst, t, s, dflt, depth)
	case Record:
		return e.record(dst, t, s, dflt, depth)
	}
	return nil, derr(path, "unsupported type %s", t.Type)
}

func withArticle(t Type) string {
	switch t {
	case Int:
		return "an int"
	case Long:
		return "a long"
	case Float:
		return "a float"
	case Double:
		return "a double"
	}
	return "a " + t.String()
}

func (e *jsonEncoder) union(dst []byte, t *Schema, s *jsonscan.Scanner, dflt bool, depth int) ([]byte, error) {
	const path = ""
	if len(t.Branches) == 0 {
		return nil, derr(path, "an empty union has no values")
	}
	if dflt {
		dst = appendVarint(dst, 0)
		return e.encode(dst, t.Branches[0], s, true, depth+1)
	}
	k := s.Peek()
	if k == jsonscan.Null {
		for i, b := range t.Branches {
			if b.Type == Null {
				dst = appendVarint(dst, int64(i))
				return dst, s.Literal("null")
			}
		}
		return nil, derr(path, "null is not allowed: the union %s has no null branch", describe(t))
	}
	if k != jsonscan.Object {
		return nil, derr(path, "a union value must be null or wrapped as {\"<type>\": value}, e.g. {%q: …}; found %s", firstNonNull(t), describeJSON(k))
	}
	if _, err := s.ObjectStart(); err != nil {
		return nil, err
	}
	name, err := s.Key(e.str)
	if err != nil {
		return nil, err
	}
	idx := t.branchIndex(string(name))
	if idx < 0 {
		return nil, derr(path, "the union %s has no branch %q", describe(t), truncate(string(name)))
	}
	dst = appendVarint(dst, int64(idx))
	dst, err = e.encode(dst, t.Branches[idx], s, false, depth+1)
	if err != nil {
		return nil, err
	}
	if more, err := s.More('}'); err != nil {
		return nil, err
	} else if more {
		return nil, derr(path, "a union value is an object with exactly one member")
	}
	return dst, nil
}

func firstNonNull(t *Schema) string {
	for _, b := range t.Branches {
		if b.Type != Null {
			return b.TypeName()
		}
	}
	return "null"
}

// branchIndex finds a union branch by the name Avro's JSON encoding gives it.
func (t *Schema) branchIndex(name string) int {
	for i, b := range t.Branches {
		if b.TypeName() == name {
			return i
		}
	}
	// The unqualified name of a named type, when only one branch has it.
	found := -1
	for i, b := range t.Branches {
		if b.Type.IsNamed() && b.Name == name {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// span is the raw text of a record field given out of order.
type span struct {
	start, end int
}

func (e *jsonEncoder) record(dst []byte, t *Schema, s *jsonscan.Scanner, dflt bool, depth int) ([]byte, error) {
	const path = ""
	k := s.Peek()
	if k != jsonscan.Object {
		return nil, derr(path, "expected an object (record %s), found %s", t.FullName(), describeJSON(k))
	}
	empty, err := s.ObjectStart()
	if err != nil {
		return nil, err
	}
	// Fields in schema order are encoded as they come; from the first one out of order on, the rest are
	// remembered and encoded in schema order at the end.
	next := 0
	var spans []span // by field index, once out of order
	if !empty {
		for {
			key, err := s.Key(e.str)
			if err != nil {
				return nil, err
			}
			fi := t.fieldIndexOf(key)
			if fi < 0 {
				return nil, derr(path, "record %s has no field %q", t.FullName(), truncate(string(key)))
			}
			if fi < next || (spans != nil && spans[fi].end != 0) {
				return nil, derr(path, "field %q given twice", t.Fields[fi].Name)
			}
			if spans == nil && fi == next {
				dst, err = e.encode(dst, t.Fields[fi].Type, s, dflt, depth+1)
				if err != nil {
					return nil, within(err, "."+t.Fields[fi].Name)
				}
				next++
			} else {
				if spans == nil {
					spans = make([]span, len(t.Fields))
				}
				s.SkipSpace()
				start := s.Pos
				if _, err := s.Skip(); err != nil {
					return nil, err
				}
				spans[fi] = span{start, s.Pos}
			}
			more, err := s.More('}')
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
	}
	for fi := next; fi < len(t.Fields); fi++ {
		f := t.Fields[fi]
		if spans != nil && spans[fi].end != 0 {
			sub := &jsonscan.Scanner{B: s.B[:spans[fi].end], Pos: spans[fi].start}
			dst, err = e.encode(dst, f.Type, sub, dflt, depth+1)
			if err != nil {
				return nil, within(err, "."+f.Name)
			}
			continue
		}
		if !f.HasDefault {
			return nil, derr("."+f.Name, "missing, and the field has no default")
		}
		sub := jsonscan.New(f.Default)
		dst, err = e.encode(dst, f.Type, sub, true, depth+1)
		if err != nil {
			return nil, derr("."+f.Name, "its default does not fit its type: %v", err)
		}
	}
	return dst, nil
}

func (t *Schema) fieldIndexOf(name []byte) int {
	if t.fieldIdx != nil {
		if i, ok := t.fieldIdx[string(name)]; ok {
			return i
		}
		return -1
	}
	for i, f := range t.Fields {
		if f.Name == string(name) {
			return i
		}
	}
	return -1
}
