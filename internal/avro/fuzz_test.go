package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// goavroBinaryFromJSON is the generic decoder path, the reference for the direct encoder.
func goavroBinaryFromJSON(c *Codec, text []byte) ([]byte, error) {
	native, rest, err := c.gc.NativeFromTextual(text)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("trailing data")
	}
	return c.gc.BinaryFromNative(nil, native)
}

var fuzzSchemas = []string{
	`{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`,
	`{"type":"record","name":"All","fields":[{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"by","type":"bytes"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"fx","type":{"type":"fixed","name":"F","size":3}},{"name":"a","type":{"type":"array","items":"long"}},{"name":"m","type":{"type":"map","values":["null","double"]}}]}`,
	`{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"],"default":null}]}`,
	`{"type":"record","name":"T","fields":[{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"dt","type":{"type":"int","logicalType":"date"}},{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},{"name":"u","type":{"type":"string","logicalType":"uuid"}}]}`,
	`"string"`,
	`["null","long","string"]`,
	`{"type":"array","items":"null"}`,
}

func fuzzCodecs(t testing.TB) []*Codec {
	var out []*Codec
	for _, s := range fuzzSchemas {
		sch, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCodec(sch)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// FuzzJSONDecoder feeds arbitrary text to the Avro JSON decoder of the REST edge: it must never panic, and
// whatever it accepts must encode to binary that decodes to the same value.
func FuzzJSONDecoder(f *testing.F) {
	codecs := fuzzCodecs(f)
	seeds := []struct {
		i    uint8
		text string
	}{
		{0, `{"name":"alice"}`}, {0, `{"name":"bob","lastname":{"string":"smith"}}`}, {0, `{"name":"bob","lastname":"smith"}`},
		{1, `{"b":true,"i":1,"l":2,"f":1.5,"d":2.5,"by":"\u00ff","e":"A","fx":"abc","a":[1,2],"m":{"k":{"double":1}}}`},
		{2, `{"v":1,"next":{"L":{"v":2,"next":null}}}`},
		{3, `{"ts":1700000000000,"dt":19000,"dec":"\u0001\u0002","u":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
		{4, `"hello"`}, {5, `{"long":5}`}, {5, `null`}, {0, `{"name":"\ud800"}`}, {1, `{"i":1e400}`},
	}
	for _, s := range seeds {
		f.Add(s.i, []byte(s.text))
	}
	f.Fuzz(func(t *testing.T, i uint8, text []byte) {
		c := codecs[int(i)%len(codecs)]
		bin, err := c.AppendBinaryFromJSON(nil, text)
		// Differential: goavro's generic decoder must agree wherever its reading of the specification is
		// the same (it rejects NaN strings and unqualified union branch names, which Avro Java accepts).
		ref, refErr := goavroBinaryFromJSON(c, text)
		// goavro re-encodes decimals through big.Rat; Avro Java, like the direct encoder, copies the bytes.
		decimal := strings.Contains(c.Schema.Canonical(), `"decimal"`)
		if err == nil && refErr == nil && !bytes.Equal(bin, ref) && !decimal {
			t.Fatalf("%q: encoded %x, goavro %x", text, bin, ref)
		}
		// A decimal beyond its precision is refused here; goavro does not look.
		if err != nil && refErr == nil && json.Valid(text) && utf8.Valid(text) && !errors.Is(err, ErrDecimalRange) {
			t.Fatalf("%q: rejected (%v) but goavro accepts it as %x", text, err, ref)
		}
		if err != nil {
			return
		}
		native, err := c.NativeFromBinary(bin)
		if err != nil {
			t.Fatalf("accepted %q but its binary %x does not decode: %v", text, bin, err)
		}
		again, err := c.gc.BinaryFromNative(nil, native)
		if err != nil || (!bytes.Equal(again, bin) && !decimal) {
			t.Fatalf("binary of %q does not round-trip: %x vs %x (%v)", text, bin, again, err)
		}
	})
}

// FuzzWireDecoder feeds arbitrary record values to the Confluent framing parser and the binary decoder:
// never a panic, and a decoded value encodes back to a value that decodes to the same thing.
func FuzzWireDecoder(f *testing.F) {
	codecs := fuzzCodecs(f)
	f.Add(uint8(0), append(AppendWireHeader(nil, 1), 10, 'a', 'l', 'i', 'c', 'e', 0))
	f.Add(uint8(0), append(AppendWireHeader(nil, 1), 6, 'b', 'o', 'b', 2, 10, 's', 'm', 'i', 't', 'h'))
	f.Add(uint8(2), append(AppendWireHeader(nil, 7), 2, 2, 4, 0))
	f.Add(uint8(1), append(AppendWireHeader(nil, 3), 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0, 'a', 'b', 'c', 3, 2, 4, 0, 0))
	f.Add(uint8(4), []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(uint8(5), []byte{1, 0, 0, 0, 1, 2})
	f.Add(uint8(3), []byte{})
	// 17 bytes declaring 2^24 nulls, and a block count of 2^40 in a few bytes.
	f.Add(uint8(6), append(AppendWireHeader(nil, 9), 0x80, 0x80, 0x80, 0x10, 0x80, 0x80, 0x80, 0x10, 0x80, 0x80, 0x80, 0x10, 0))
	f.Add(uint8(6), append(AppendWireHeader(nil, 9), 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0))
	f.Fuzz(func(t *testing.T, i uint8, value []byte) {
		id, payload, err := ParseWire(value)
		if err != nil {
			return
		}
		if id < 0 || len(payload) != len(value)-WireHeaderSize {
			t.Fatalf("ParseWire(%x) = %d, %d bytes", value, id, len(payload))
		}
		c := codecs[int(i)%len(codecs)]
		// Validate is what the pipeline accepts: it agrees with goavro but for the bounds goavro does not
		// check (decimal precision, items that take no bytes, ints of 32 bits), and is never slow.
		start := time.Now()
		verr := Validate(c.Schema, payload)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("validating %d bytes took %v", len(payload), d)
		}
		native, err := c.NativeFromBinary(payload)
		if verr == nil && err != nil {
			t.Fatalf("Validate accepts %x, goavro does not: %v", payload, err)
		}
		// goavro also reads an int beyond 32 bits and a varint beyond 64, which Avro Java refuses as we do.
		stricter := verr != nil && (strings.Contains(verr.Error(), "out of range") || strings.Contains(verr.Error(), "overflows 64 bits"))
		if verr != nil && err == nil && !errors.Is(verr, ErrDecimalRange) && !errors.Is(verr, ErrTooManyItems) && !stricter {
			t.Fatalf("Validate refuses %x (%v), goavro decodes it", payload, verr)
		}
		if err != nil {
			return
		}
		bin, err := c.gc.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("decoded %x to %v, which does not encode: %v", payload, native, err)
		}
		back, err := c.NativeFromBinary(bin)
		if err != nil || !reflect.DeepEqual(back, native) {
			t.Fatalf("re-encoded value differs: %v vs %v (%v)", native, back, err)
		}
	})
}

// FuzzParseSchema: the schema parser never panics, and an accepted schema's canonical text is a fixed
// point that the codec accepts too.
func FuzzParseSchema(f *testing.F) {
	for _, s := range fuzzSchemas {
		f.Add(s)
	}
	f.Add(`{"type":"record","name":"a.b.R","fields":[{"name":"x","type":{"type":"enum","name":"c.E","symbols":["A"],"default":"A"}},{"name":"y","type":"c.E","aliases":["q"],"order":"ignore","doc":"d","x-p":[1,{"a":null}]}]}`)
	f.Add(`{"type":"fixed","name":"D","size":16,"logicalType":"decimal","precision":30,"scale":4}`)
	f.Add(`[{"type":"map","values":"int"},{"type":"array","items":"int"},"null"]`)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			if !IsParseError(err) {
				t.Fatalf("error of the wrong kind: %T %v", err, err)
			}
			return
		}
		canon := s.Canonical()
		s2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical text %s of %s does not parse: %v", canon, text, err)
		}
		if s2.Canonical() != canon {
			t.Fatalf("canonical form is not a fixed point:\n%s\n%s", canon, s2.Canonical())
		}
		if !Compatible(s, s2) || !Compatible(s2, s) {
			t.Fatalf("a schema and its canonical form are incompatible: %s", canon)
		}
		_ = s.Normalized()
		_, _ = NewCodec(s)
	})
}
