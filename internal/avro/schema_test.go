package avro

import (
	"strings"
	"testing"
)

func TestParseInvalid(t *testing.T) {
	cases := map[string]string{
		"not json":             `{"type":`,
		"trailing data":        `"int" "long"`,
		"unknown type":         `{"type":"recrod"}`,
		"undefined name":       `"Foo"`,
		"record without name":  `{"type":"record","fields":[]}`,
		"record without field": `{"type":"record","name":"R"}`,
		"bad name":             `{"type":"record","name":"1R","fields":[]}`,
		"bad namespace":        `{"type":"record","name":"R","namespace":"a..b","fields":[]}`,
		"primitive name":       `{"type":"record","name":"int","fields":[]}`,
		"duplicate field":      `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`,
		"field without type":   `{"type":"record","name":"R","fields":[{"name":"a"}]}`,
		"bad field name":       `{"type":"record","name":"R","fields":[{"name":"a-b","type":"int"}]}`,
		"redefined":            `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"R","fields":[]}}]}`,
		"enum dup symbol":      `{"type":"enum","name":"E","symbols":["A","A"]}`,
		"enum bad symbol":      `{"type":"enum","name":"E","symbols":["A-"]}`,
		"enum bad default":     `{"type":"enum","name":"E","symbols":["A"],"default":"B"}`,
		"fixed no size":        `{"type":"fixed","name":"F"}`,
		"fixed negative":       `{"type":"fixed","name":"F","size":-1}`,
		"nested union":         `["null",["int"]]`,
		"duplicate branch":     `["int","int"]`,
		"duplicate arrays":     `[{"type":"array","items":"int"},{"type":"array","items":"long"}]`,
		"array without items":  `{"type":"array"}`,
		"map without values":   `{"type":"map"}`,
		"type not a string":    `{"type":{"type":"int"}}`,
		"number":               `42`,
		"bad int default":      `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`,
		"int default too big":  `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":4294967296}]}`,
		"int default fraction": `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1.5}]}`,
		"union default branch": `{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"],"default":"x"}]}`,
		"null as string":       `{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"],"default":"null"}]}`,
		"fixed default length": `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":2},"default":"abc"}]}`,
		"record default":       `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]},"default":{}}]}`,
		"deep nesting":         strings.Repeat(`{"type":"array","items":`, 300) + `"int"` + strings.Repeat(`}`, 300),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(text); err == nil || !IsParseError(err) {
				t.Fatalf("Parse(%s) = %v, want a ParseError", truncate(text), err)
			}
		})
	}
}

func TestParseToleratesBadDefaultsWhenAsked(t *testing.T) {
	text := `{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"],"default":"null"}]}`
	if _, err := ParseWith(text, ParseOptions{}); err != nil {
		t.Fatalf("stored schemas with invalid defaults must still parse: %v", err)
	}
}

func TestCanonical(t *testing.T) {
	cases := []struct{ in, want string }{
		{`"string"`, `"string"`},
		{`{"type": "string"}`, `"string"`},
		{`{ "type" : "long" , "logicalType" : "timestamp-millis" }`, `{"type":"long","logicalType":"timestamp-millis"}`},
		{`{"fields": [{"type": "string", "name": "name"}], "name": "User", "type": "record"}`,
			`{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`},
		// Namespaces are written where they change; references are short within their namespace.
		{`{"type":"record","name":"a.b.R","fields":[{"name":"x","type":{"type":"fixed","name":"F","size":2}},{"name":"y","type":"F"},{"name":"z","type":{"type":"enum","name":"c.E","symbols":["A"]}},{"name":"w","type":"c.E"}]}`,
			`{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"x","type":{"type":"fixed","name":"F","size":2}},{"name":"y","type":"F"},{"name":"z","type":{"type":"enum","name":"E","namespace":"c","symbols":["A"]}},{"name":"w","type":"c.E"}]}`},
		// Field attribute order: name, type, doc, default, order, aliases, then custom attributes.
		{`{"type":"record","name":"R","doc":"d","aliases":["Q"],"x-prop":1,"fields":[{"x":true,"aliases":["b"],"order":"DESCENDING","default":1,"doc":"fd","type":"int","name":"a"}]}`,
			`{"type":"record","name":"R","doc":"d","fields":[{"name":"a","type":"int","doc":"fd","default":1,"order":"descending","aliases":["b"],"x":true}],"x-prop":1,"aliases":["Q"]}`},
		{`{"type":"enum","name":"E","default":"B","symbols":["A","B"],"doc":"e"}`,
			`{"type":"enum","name":"E","doc":"e","symbols":["A","B"],"default":"B"}`},
		{`{"type":"array","items":{"type":"map","values":["null","string"]}}`, `{"type":"array","items":{"type":"map","values":["null","string"]}}`},
		{`{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`, `{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`},
		// Recursive: the second use is a name.
		{`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}`,
			`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}`},
		// Strings are escaped as Jackson does: HTML characters stay as they are.
		{`{"type":"record","name":"R","doc":"<a & \"b\">\n","fields":[]}`, `{"type":"record","name":"R","doc":"<a & \"b\">\n","fields":[]}`},
	}
	for _, c := range cases {
		s, err := Parse(c.in)
		if err != nil {
			t.Fatalf("Parse(%s): %v", c.in, err)
		}
		if got := s.Canonical(); got != c.want {
			t.Errorf("Canonical(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
		// The canonical text parses to itself.
		s2, err := Parse(s.Canonical())
		if err != nil {
			t.Fatalf("reparse %s: %v", s.Canonical(), err)
		}
		if s2.Canonical() != s.Canonical() {
			t.Errorf("canonical form is not a fixed point: %s -> %s", s.Canonical(), s2.Canonical())
		}
	}
}

func TestNormalized(t *testing.T) {
	a, _ := Parse(`{"type":"record","namespace":"n","name":"R","fields":[{"name":"a","type":"int","y":1,"x":2}],"aliases":["Z","Y"]}`)
	b, _ := Parse(`{"name":"n.R","type":"record","aliases":["n.Y","n.Z"],"fields":[{"type":"int","x":2,"name":"a","y":1}]}`)
	if a.Normalized() != b.Normalized() {
		t.Errorf("normalized forms differ:\n%s\n%s", a.Normalized(), b.Normalized())
	}
	if a.Canonical() == b.Canonical() {
		t.Errorf("canonical forms should differ (aliases and attribute order): %s", a.Canonical())
	}
}

func TestLogicalTypes(t *testing.T) {
	cases := []struct {
		in, lt string
	}{
		{`{"type":"int","logicalType":"date"}`, "date"},
		{`{"type":"long","logicalType":"date"}`, ""}, // wrong base type: ignored
		{`{"type":"long","logicalType":"timestamp-micros"}`, "timestamp-micros"},
		{`{"type":"string","logicalType":"uuid"}`, "uuid"},
		{`{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`, "decimal"},
		{`{"type":"bytes","logicalType":"decimal","precision":2,"scale":4}`, ""}, // scale > precision: ignored
		{`{"type":"fixed","name":"D","size":2,"logicalType":"decimal","precision":4}`, "decimal"},
		{`{"type":"fixed","name":"D","size":2,"logicalType":"decimal","precision":5}`, ""}, // 2 bytes hold 4 digits
		{`{"type":"fixed","name":"Du","size":12,"logicalType":"duration"}`, "duration"},
	}
	for _, c := range cases {
		s, err := Parse(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if s.LogicalType != c.lt {
			t.Errorf("%s: logical type %q, want %q", c.in, s.LogicalType, c.lt)
		}
	}
}

func TestCodecJSONToBinary(t *testing.T) {
	s, err := Parse(`{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodec(s)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want []byte
		ok   bool
	}{
		{`{"name":"alice"}`, []byte{10, 'a', 'l', 'i', 'c', 'e', 0}, true},
		{`{"name":"bob","lastname":{"string":"smith"}}`, []byte{6, 'b', 'o', 'b', 2, 10, 's', 'm', 'i', 't', 'h'}, true},
		{`{"name":"bob","lastname":null}`, []byte{6, 'b', 'o', 'b', 0}, true},
		{`{"name":"bob","lastname":"smith"}`, nil, false}, // a union value must be wrapped
		{`{"name":1}`, nil, false},
		{`{"lastname":null}`, nil, false},
		{`{"name":"a","other":1}`, nil, false},
		{`{"name":"a"} x`, nil, false},
		{`[`, nil, false},
	}
	for _, cs := range cases {
		got, err := c.AppendBinaryFromJSON(nil, []byte(cs.in))
		if (err == nil) != cs.ok {
			t.Errorf("%s: err=%v, want ok=%v", cs.in, err, cs.ok)
			continue
		}
		if cs.ok && string(got) != string(cs.want) {
			t.Errorf("%s: got %v want %v", cs.in, got, cs.want)
		}
		if cs.ok {
			back, err := c.JSONFromBinary(got)
			if err != nil {
				t.Errorf("%s: decode back: %v", cs.in, err)
			}
			if _, err := c.AppendBinaryFromJSON(nil, back); err != nil {
				t.Errorf("%s: JSON round trip %s: %v", cs.in, back, err)
			}
		}
	}
}

func TestWire(t *testing.T) {
	b := AppendWireHeader(nil, 42)
	b = append(b, 1, 2)
	id, payload, err := ParseWire(b)
	if err != nil || id != 42 || string(payload) != "\x01\x02" {
		t.Fatalf("got %d %v %v", id, payload, err)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 0, 0, 1}, {1, 0, 0, 0, 1}, {0xff}} {
		if _, _, err := ParseWire(bad); err == nil {
			t.Errorf("ParseWire(%v) accepted", bad)
		}
	}
}
