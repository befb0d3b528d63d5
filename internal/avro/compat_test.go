package avro

import (
	"strings"
	"testing"
)

// Every rule of Avro schema resolution (the Avro specification's "Schema Resolution" and apache/avro
// SchemaCompatibility), checked in both directions: "ab" is the verdict with a as reader and b as writer,
// "ba" the other way round. An empty verdict means compatible; otherwise it names the incompatibility type
// and, after a colon, the location in the reader schema.
func TestCompatibilityRules(t *testing.T) {
	rec := func(name string, fields ...string) string {
		return `{"type":"record","name":"` + name + `","fields":[` + strings.Join(fields, ",") + `]}`
	}
	f := func(name, typ string) string { return `{"name":"` + name + `","type":` + typ + `}` }
	fd := func(name, typ, def string) string {
		return `{"name":"` + name + `","type":` + typ + `,"default":` + def + `}`
	}
	enum := func(name string, syms ...string) string {
		return `{"type":"enum","name":"` + name + `","symbols":["` + strings.Join(syms, `","`) + `"]}`
	}
	list := `{"type":"record","name":"List","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","List"],"default":null}]}`
	listLong := `{"type":"record","name":"List","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","List"],"default":null}]}`
	listExtra := `{"type":"record","name":"List","fields":[{"name":"v","type":"int"},{"name":"w","type":"int"},{"name":"next","type":["null","List"],"default":null}]}`

	cases := []struct {
		name   string
		a, b   string
		ab, ba string
	}{
		// Primitives and promotions.
		{"same primitive", `"int"`, `"int"`, "", ""},
		{"null vs null", `"null"`, `"null"`, "", ""},
		{"int promotes to long", `"long"`, `"int"`, "", "TYPE_MISMATCH:/"},
		{"int promotes to float", `"float"`, `"int"`, "", "TYPE_MISMATCH:/"},
		{"int promotes to double", `"double"`, `"int"`, "", "TYPE_MISMATCH:/"},
		{"long promotes to float", `"float"`, `"long"`, "", "TYPE_MISMATCH:/"},
		{"long promotes to double", `"double"`, `"long"`, "", "TYPE_MISMATCH:/"},
		{"float promotes to double", `"double"`, `"float"`, "", "TYPE_MISMATCH:/"},
		{"string and bytes both ways", `"string"`, `"bytes"`, "", ""},
		{"string vs int", `"string"`, `"int"`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},
		{"boolean vs int", `"boolean"`, `"int"`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},
		{"null vs int", `"null"`, `"int"`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},
		{"logical type does not matter", `{"type":"long","logicalType":"timestamp-millis"}`, `"long"`, "", ""},

		// Records: names, aliases, fields, defaults.
		{"same record", rec("R", f("a", `"int"`)), rec("R", f("a", `"int"`)), "", ""},
		{"record renamed", rec("R", f("a", `"int"`)), rec("S", f("a", `"int"`)), "NAME_MISMATCH:/name", "NAME_MISMATCH:/name"},
		{"namespace-only difference", `{"type":"record","name":"R","namespace":"x","fields":[]}`, `{"type":"record","name":"R","namespace":"y","fields":[]}`, "", ""},
		{"reader alias names the writer", `{"type":"record","name":"R","aliases":["old.S"],"fields":[]}`, `{"type":"record","name":"S","namespace":"old","fields":[]}`, "", "NAME_MISMATCH:/name"},
		{"field added with default", rec("R", f("a", `"int"`), fd("b", `"string"`, `"x"`)), rec("R", f("a", `"int"`)), "", ""},
		{"field added without default", rec("R", f("a", `"int"`), f("b", `"string"`)), rec("R", f("a", `"int"`)), "READER_FIELD_MISSING_DEFAULT_VALUE:/fields/1", ""},
		{"nullable field added with null default", rec("User", f("name", `"string"`), fd("lastname", `["null","string"]`, "null")), rec("User", f("name", `"string"`)), "", ""},
		{"field renamed through reader alias", rec("R", `{"name":"b","type":"int","aliases":["a"]}`), rec("R", f("a", `"int"`)), "", "READER_FIELD_MISSING_DEFAULT_VALUE:/fields/0"},
		{"field type promoted", rec("R", f("a", `"long"`)), rec("R", f("a", `"int"`)), "", "TYPE_MISMATCH:/fields/0/type"},
		{"field type changed", rec("R", f("a", `"string"`)), rec("R", f("a", `"int"`)), "TYPE_MISMATCH:/fields/0/type", "TYPE_MISMATCH:/fields/0/type"},
		{"nested record field", rec("R", f("in", rec("In", f("x", `"int"`), f("y", `"int"`)))), rec("R", f("in", rec("In", f("x", `"int"`)))), "READER_FIELD_MISSING_DEFAULT_VALUE:/fields/0/type/fields/1", ""},
		{"record vs primitive", rec("R"), `"int"`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},

		// Enums.
		{"same enum", enum("E", "A", "B"), enum("E", "A", "B"), "", ""},
		{"enum symbol added", enum("E", "A", "B", "C"), enum("E", "A", "B"), "", "MISSING_ENUM_SYMBOLS:/symbols"},
		{"enum symbol added, reader default", `{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`, enum("E", "A", "B", "C"), "", ""},
		{"enum symbol removed", enum("E", "A"), enum("E", "A", "B"), "MISSING_ENUM_SYMBOLS:/symbols", ""},
		{"enum renamed", enum("E", "A"), enum("F", "A"), "NAME_MISMATCH:/name", "NAME_MISMATCH:/name"},
		{"enum reordered", enum("E", "B", "A"), enum("E", "A", "B"), "", ""},

		// Fixed.
		{"same fixed", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"F","size":4}`, "", ""},
		{"fixed size changed", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"F","size":8}`, "FIXED_SIZE_MISMATCH:/size", "FIXED_SIZE_MISMATCH:/size"},
		{"fixed renamed", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"G","size":4}`, "NAME_MISMATCH:/name", "NAME_MISMATCH:/name"},
		{"fixed alias", `{"type":"fixed","name":"F","size":4,"aliases":["G"]}`, `{"type":"fixed","name":"G","size":4}`, "", "NAME_MISMATCH:/name"},
		{"fixed vs bytes", `{"type":"fixed","name":"F","size":4}`, `"bytes"`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},

		// Arrays and maps.
		{"array items promoted", `{"type":"array","items":"long"}`, `{"type":"array","items":"int"}`, "", "TYPE_MISMATCH:/items"},
		{"map values promoted", `{"type":"map","values":"double"}`, `{"type":"map","values":"float"}`, "", "TYPE_MISMATCH:/values"},
		{"map values changed", `{"type":"map","values":"string"}`, `{"type":"map","values":"int"}`, "TYPE_MISMATCH:/values", "TYPE_MISMATCH:/values"},
		{"array vs map", `{"type":"array","items":"int"}`, `{"type":"map","values":"int"}`, "TYPE_MISMATCH:/", "TYPE_MISMATCH:/"},

		// Unions.
		{"reader union takes a bare writer", `["null","string"]`, `"string"`, "", "TYPE_MISMATCH:/0"},
		{"union branch added", `["null","string","int"]`, `["null","string"]`, "", "MISSING_UNION_BRANCH:/2"},
		{"union branch order", `["null","string"]`, `["string","null"]`, "", ""},
		{"single-branch union and its type", `["int"]`, `"int"`, "", ""},
		{"reader union with promotion", `["null","long"]`, `"int"`, "", "TYPE_MISMATCH:/0"},
		{"union lacks the writer type", `["null","string"]`, `"int"`, "MISSING_UNION_BRANCH:/", "TYPE_MISMATCH:/0"},
		{"empty writer union", `"int"`, `[]`, "", "MISSING_UNION_BRANCH:/"},
		{"union of records", `["null",` + rec("R", f("a", `"int"`), fd("b", `"int"`, "0")) + `]`, `["null",` + rec("R", f("a", `"int"`)) + `]`, "", ""},

		// Recursive types.
		{"recursive same", list, list, "", ""},
		{"recursive promoted", listLong, list, "", "TYPE_MISMATCH:/fields/0/type"},
		{"recursive field without default", listExtra, list, "READER_FIELD_MISSING_DEFAULT_VALUE:/fields/1", ""},
	}
	verdict := func(reader, writer string) string {
		r, err := Parse(reader)
		if err != nil {
			t.Fatalf("parse %s: %v", reader, err)
		}
		w, err := Parse(writer)
		if err != nil {
			t.Fatalf("parse %s: %v", writer, err)
		}
		ins := CheckCompatibility(r, w)
		if len(ins) == 0 {
			return ""
		}
		return ins[0].Type + ":" + ins[0].Location
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := verdict(c.a, c.b); got != c.ab {
				t.Errorf("reader a, writer b: got %q, want %q", got, c.ab)
			}
			if got := verdict(c.b, c.a); got != c.ba {
				t.Errorf("reader b, writer a: got %q, want %q", got, c.ba)
			}
		})
	}
}

// The same schemas under every compatibility level, including the transitive ones, which look past the
// latest version.
func TestCheckLevel(t *testing.T) {
	v1 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`
	v2 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}`
	// v3 drops b's default: readable by v2 (writer v3 has b) but it cannot read v1 data (no b, no default).
	v3 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`
	// v4 removes a field without a default in the old versions: forward-incompatible.
	v4 := `{"type":"record","name":"R","fields":[{"name":"b","type":"int","default":0}]}`
	p := func(s string) *Schema {
		x, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	hist := []*Schema{p(v1), p(v2)}
	cases := []struct {
		level     Level
		candidate string
		ok        bool
	}{
		{Backward, v3, true},            // v3 reads v2 data
		{BackwardTransitive, v3, false}, // but not v1 data
		{Forward, v3, true},             // v2 reads v3 data
		{ForwardTransitive, v3, true},   // v1 reads v3 data (ignores b)
		{Full, v3, true},
		{FullTransitive, v3, false},
		{Forward, v4, false}, // v2 needs a, which v4 does not write
		{Backward, v4, true},
		{Full, v4, false},
		{None, v4, true},
	}
	for _, c := range cases {
		msgs := CheckLevel(c.level, p(c.candidate), hist)
		if got := len(msgs) == 0; got != c.ok {
			t.Errorf("%s: compatible=%v, want %v (%v)", c.level, got, c.ok, msgs)
		}
	}
}

func TestDescribe(t *testing.T) {
	r, _ := Parse(`{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":"string"}]}`)
	w, _ := Parse(`{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`)
	ins := CheckCompatibility(r, w)
	if len(ins) != 1 {
		t.Fatalf("got %v", ins)
	}
	want := `{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'lastname' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'lastname'}`
	if got := ins[0].Describe(true); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
