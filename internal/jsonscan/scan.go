// Package jsonscan is a small allocation-free JSON scanner over a byte slice, for the REST edge's hot path:
// it walks a produce request once, hands out the raw text of each record's key and value, and lets the
// Avro encoder read values straight into Avro binary without building Go maps.
package jsonscan

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is malformed JSON, with the byte offset where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// MaxDepth bounds nesting so that hostile input cannot exhaust the stack.
const MaxDepth = 512

// Kind is the kind of the next JSON value.
type Kind byte

// The JSON value kinds, named by their first byte.
const (
	Invalid Kind = 0
	Object  Kind = '{'
	Array   Kind = '['
	String  Kind = '"'
	Number  Kind = '0'
	True    Kind = 't'
	False   Kind = 'f'
	Null    Kind = 'n'
)

func (k Kind) String() string {
	switch k {
	case Object:
		return "an object"
	case Array:
		return "an array"
	case String:
		return "a string"
	case Number:
		return "a number"
	case True, False:
		return "a boolean"
	case Null:
		return "null"
	}
	return "nothing"
}

// Scanner reads JSON values from a buffer.
type Scanner struct {
	B   []byte
	Pos int
}

// New returns a scanner over b.
func New(b []byte) *Scanner { return &Scanner{B: b} }

func (s *Scanner) errf(format string, args ...any) error {
	return &SyntaxError{Offset: s.Pos, Msg: fmt.Sprintf(format, args...)}
}

// SkipSpace moves past whitespace.
func (s *Scanner) SkipSpace() {
	for s.Pos < len(s.B) {
		switch s.B[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// Peek returns the kind of the next value without consuming it.
func (s *Scanner) Peek() Kind {
	s.SkipSpace()
	if s.Pos >= len(s.B) {
		return Invalid
	}
	switch c := s.B[s.Pos]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return Kind(c)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return Number
		}
	}
	return Invalid
}

// AtEnd reports whether only whitespace is left.
func (s *Scanner) AtEnd() bool {
	s.SkipSpace()
	return s.Pos >= len(s.B)
}

// Expect consumes one structural byte.
func (s *Scanner) Expect(c byte) error {
	s.SkipSpace()
	if s.Pos >= len(s.B) {
		return s.errf("unexpected end of input, expected %q", c)
	}
	if s.B[s.Pos] != c {
		return s.errf("expected %q, found %q", c, s.B[s.Pos])
	}
	s.Pos++
	return nil
}

// Literal consumes true, false or null.
func (s *Scanner) Literal(lit string) error {
	s.SkipSpace()
	if len(s.B)-s.Pos < len(lit) || string(s.B[s.Pos:s.Pos+len(lit)]) != lit {
		return s.errf("expected %s", lit)
	}
	s.Pos += len(lit)
	return nil
}

// ObjectStart consumes '{' and reports whether the object is empty (then '}' is consumed too).
func (s *Scanner) ObjectStart() (empty bool, err error) {
	if err := s.Expect('{'); err != nil {
		return false, err
	}
	s.SkipSpace()
	if s.Pos < len(s.B) && s.B[s.Pos] == '}' {
		s.Pos++
		return true, nil
	}
	return false, nil
}

// Key reads an object key and the colon after it.
func (s *Scanner) Key(buf []byte) ([]byte, error) {
	k, err := s.String(buf)
	if err != nil {
		return nil, err
	}
	return k, s.Expect(':')
}

// More consumes the ',' between members, or the closing byte, and reports whether another member follows.
func (s *Scanner) More(closing byte) (bool, error) {
	s.SkipSpace()
	if s.Pos >= len(s.B) {
		return false, s.errf("unexpected end of input, expected ',' or %q", closing)
	}
	switch s.B[s.Pos] {
	case ',':
		s.Pos++
		return true, nil
	case closing:
		s.Pos++
		return false, nil
	}
	return false, s.errf("expected ',' or %q, found %q", closing, s.B[s.Pos])
}

// ArrayStart consumes '[' and reports whether the array is empty (then ']' is consumed too).
func (s *Scanner) ArrayStart() (empty bool, err error) {
	if err := s.Expect('['); err != nil {
		return false, err
	}
	s.SkipSpace()
	if s.Pos < len(s.B) && s.B[s.Pos] == ']' {
		s.Pos++
		return true, nil
	}
	return false, nil
}

// String reads a string, decoding escapes, and appends its UTF-8 bytes to buf[:0]. A string without
// escapes is returned as a slice of the input, without copying.
func (s *Scanner) String(buf []byte) ([]byte, error) {
	if err := s.Expect('"'); err != nil {
		return nil, err
	}
	start := s.Pos
	for s.Pos < len(s.B) {
		c := s.B[s.Pos]
		if c == '"' {
			out := s.B[start:s.Pos]
			s.Pos++
			return out, nil
		}
		if c == '\\' {
			return s.stringSlow(append(buf[:0], s.B[start:s.Pos]...))
		}
		if c < 0x20 {
			return nil, s.errf("control character in string")
		}
		s.Pos++
	}
	return nil, s.errf("unterminated string")
}

func (s *Scanner) stringSlow(out []byte) ([]byte, error) {
	for s.Pos < len(s.B) {
		c := s.B[s.Pos]
		switch {
		case c == '"':
			s.Pos++
			return out, nil
		case c < 0x20:
			return nil, s.errf("control character in string")
		case c != '\\':
			out = append(out, c)
			s.Pos++
			continue
		}
		if s.Pos+1 >= len(s.B) {
			return nil, s.errf("unterminated escape")
		}
		e := s.B[s.Pos+1]
		s.Pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := s.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if s.Pos+1 < len(s.B) && s.B[s.Pos] == '\\' && s.B[s.Pos+1] == 'u' {
					save := s.Pos
					s.Pos += 2
					lo, err := s.hex4()
					if err != nil {
						return nil, err
					}
					if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
						r2 = dec
					} else {
						s.Pos = save
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, s.errf("invalid escape \\%c", e)
		}
	}
	return nil, s.errf("unterminated string")
}

func (s *Scanner) hex4() (rune, error) {
	if s.Pos+4 > len(s.B) {
		return 0, s.errf("short \\u escape")
	}
	var r rune
	for _, c := range s.B[s.Pos : s.Pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.errf("invalid \\u escape")
		}
	}
	s.Pos += 4
	return r, nil
}

// NumberText reads a number and returns its literal text.
func (s *Scanner) NumberText() ([]byte, error) {
	s.SkipSpace()
	start := s.Pos
	i := s.Pos
	if i < len(s.B) && s.B[i] == '-' {
		i++
	}
	if i >= len(s.B) {
		return nil, s.errf("expected a number")
	}
	switch {
	case s.B[i] == '0':
		i++
	case s.B[i] >= '1' && s.B[i] <= '9':
		for i < len(s.B) && s.B[i] >= '0' && s.B[i] <= '9' {
			i++
		}
	default:
		return nil, s.errf("expected a number")
	}
	if i < len(s.B) && s.B[i] == '.' {
		i++
		d := i
		for i < len(s.B) && s.B[i] >= '0' && s.B[i] <= '9' {
			i++
		}
		if i == d {
			return nil, s.errf("digits expected after the decimal point")
		}
	}
	if i < len(s.B) && (s.B[i] == 'e' || s.B[i] == 'E') {
		i++
		if i < len(s.B) && (s.B[i] == '+' || s.B[i] == '-') {
			i++
		}
		d := i
		for i < len(s.B) && s.B[i] >= '0' && s.B[i] <= '9' {
			i++
		}
		if i == d {
			return nil, s.errf("digits expected in the exponent")
		}
	}
	s.Pos = i
	return s.B[start:i], nil
}

// ErrRange is a number that does not fit the requested type.
var ErrRange = errors.New("number out of range")

// ErrNotIntegral is a number with a fraction where an integer is required.
var ErrNotIntegral = errors.New("number is not an integer")

// Int reads an integral number within [min, max]; 1.0 and 1e2 are integers, 1.5 is not.
func (s *Scanner) Int(min, max int64) (int64, error) {
	text, err := s.NumberText()
	if err != nil {
		return 0, err
	}
	return ParseInt(text, min, max)
}

// ParseInt parses a JSON number literal as an integer within [min, max].
func ParseInt(text []byte, min, max int64) (int64, error) {
	if v, err := strconv.ParseInt(string(text), 10, 64); err == nil {
		if v < min || v > max {
			return 0, ErrRange
		}
		return v, nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, ErrRange
	}
	if f != float64(int64(f)) || f < -9.223372036854775e18 || f > 9.223372036854775e18 {
		if f == float64(int64(f)) {
			return 0, ErrRange
		}
		return 0, ErrNotIntegral
	}
	v := int64(f)
	if v < min || v > max {
		return 0, ErrRange
	}
	return v, nil
}

// Float reads a number as a float64.
func (s *Scanner) Float() (float64, error) {
	text, err := s.NumberText()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, ErrRange
	}
	return f, nil
}

// Skip moves past one value of any kind, checking its syntax, and returns its raw text.
func (s *Scanner) Skip() ([]byte, error) {
	s.SkipSpace()
	start := s.Pos
	if err := s.skip(0); err != nil {
		return nil, err
	}
	return s.B[start:s.Pos], nil
}

func (s *Scanner) skip(depth int) error {
	if depth > MaxDepth {
		return s.errf("nested deeper than %d levels", MaxDepth)
	}
	switch s.Peek() {
	case Object:
		empty, err := s.ObjectStart()
		if err != nil || empty {
			return err
		}
		for {
			if _, err := s.String(nil); err != nil {
				return err
			}
			if err := s.Expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			more, err := s.More('}')
			if err != nil || !more {
				return err
			}
		}
	case Array:
		empty, err := s.ArrayStart()
		if err != nil || empty {
			return err
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			more, err := s.More(']')
			if err != nil || !more {
				return err
			}
		}
	case String:
		return s.skipString()
	case Number:
		_, err := s.NumberText()
		return err
	case True:
		return s.Literal("true")
	case False:
		return s.Literal("false")
	case Null:
		return s.Literal("null")
	}
	if s.Pos >= len(s.B) {
		return s.errf("unexpected end of input")
	}
	return s.errf("unexpected %q", s.B[s.Pos])
}

// skipString checks a string's syntax without decoding it.
func (s *Scanner) skipString() error {
	s.Pos++ // the opening quote
	for s.Pos < len(s.B) {
		c := s.B[s.Pos]
		switch {
		case c == '"':
			s.Pos++
			return nil
		case c == '\\':
			if s.Pos+1 >= len(s.B) {
				return s.errf("unterminated escape")
			}
			switch s.B[s.Pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.Pos += 2
			case 'u':
				s.Pos += 2
				if _, err := s.hex4(); err != nil {
					return err
				}
			default:
				return s.errf("invalid escape")
			}
		case c < 0x20:
			return s.errf("control character in string")
		default:
			s.Pos++
		}
	}
	return s.errf("unterminated string")
}
