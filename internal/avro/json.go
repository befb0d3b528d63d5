package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// jnode is a JSON value that keeps the order of object attributes and the text of numbers, which the
// canonical schema form needs and encoding/json's maps lose.
type jnode struct {
	kind jkind
	str  string // string value, or the literal text of a number
	b    bool
	arr  []*jnode
	keys []string
	vals []*jnode
}

type jkind int

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

// maxJSONDepth bounds nesting while decoding so that hostile input cannot exhaust the stack.
const maxJSONDepth = 1000

func decodeOrdered(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the top-level value")
	}
	return n, nil
}

func decodeValue(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("unexpected end of JSON input")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &jnode{kind: jNull}, nil
	case bool:
		return &jnode{kind: jBool, b: t}, nil
	case json.Number:
		return &jnode{kind: jNumber, str: string(t)}, nil
	case string:
		return &jnode{kind: jString, str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := &jnode{kind: jArray}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '{':
			n := &jnode{kind: jObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if i := n.index(k); i >= 0 { // the last duplicate wins, as with Jackson
					n.vals[i] = v
					continue
				}
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func (n *jnode) index(k string) int {
	for i, kk := range n.keys {
		if kk == k {
			return i
		}
	}
	return -1
}

func (n *jnode) get(k string) *jnode {
	if n.kind != jObject {
		return nil
	}
	if i := n.index(k); i >= 0 {
		return n.vals[i]
	}
	return nil
}

func (n *jnode) int64() (int64, bool) {
	if n.kind != jNumber {
		return 0, false
	}
	v, err := strconv.ParseInt(n.str, 10, 64)
	return v, err == nil
}

// compact renders the node as compact JSON.
func (n *jnode) compact() json.RawMessage {
	var b []byte
	b = n.appendTo(b)
	return b
}

func (n *jnode) text() string { return string(n.compact()) }

func (n *jnode) appendTo(b []byte) []byte {
	switch n.kind {
	case jNull:
		return append(b, "null"...)
	case jBool:
		return strconv.AppendBool(b, n.b)
	case jNumber:
		return append(b, n.str...)
	case jString:
		return appendJSONString(b, n.str)
	case jArray:
		b = append(b, '[')
		for i, v := range n.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.appendTo(b)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = n.vals[i].appendTo(b)
		}
		return append(b, '}')
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s the way Jackson does: the two-character escapes for quote, backslash and the
// common control characters, \u00XX for other control characters, everything else (HTML characters and
// non-ASCII included) as is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				b = append(b, '\\', '"')
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
