package parquet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// writeFile writes rows (Avro JSON) with writer schema ws into a file whose schema is fs, and returns its path.
func writeFile(t *testing.T, dir, name, ws, fileSchema string, rows ...string) string {
	t.Helper()
	w, err := avro.Parse(ws)
	if err != nil {
		t.Fatal(err)
	}
	f, err := avro.Parse(fileSchema)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := parquet.ArrowSchema(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := parquet.NewDecoder(w, f, cols)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := avro.NewCodec(w)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := parquet.NewWriter(out, cols, map[string]string{"avro.schema": f.Canonical()}, parquet.Options{BatchRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		bin, err := codec.AppendBinaryFromJSON(nil, []byte(r))
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if err := pw.Append(dec, bin); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func duck(t *testing.T, tables []query.View, sql string) *query.Result {
	t.Helper()
	db, err := query.Open(context.Background(), tables)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

func str(p *string) string {
	if p == nil {
		return "NULL"
	}
	return *p
}

// Every Avro type, read back through DuckDB: the column's SQL type and its value.
func TestAvroToParquetMapping(t *testing.T) {
	cases := []struct {
		name    string
		avro    string
		json    string // Avro JSON encoding of the value
		sqlType string
		value   string
	}{
		{"boolean", `"boolean"`, `true`, "BOOLEAN", "true"},
		{"int", `"int"`, `-7`, "INTEGER", "-7"},
		{"long", `"long"`, `9007199254740993`, "BIGINT", "9007199254740993"},
		{"float", `"float"`, `1.5`, "FLOAT", "1.5"},
		{"double", `"double"`, `-2.25`, "DOUBLE", "-2.25"},
		{"bytes", `"bytes"`, `"\u0001\u00ff"`, "BLOB", `\x01\xFF`},
		{"string", `"string"`, `"héllo"`, "VARCHAR", "héllo"},
		{"enum", `{"type":"enum","name":"E","symbols":["A","B"]}`, `"B"`, "VARCHAR", "B"},
		{"fixed", `{"type":"fixed","name":"F","size":2}`, `"ab"`, "BLOB", "ab"},
		{"record", `{"type":"record","name":"In","fields":[{"name":"x","type":"int"},{"name":"y","type":["null","string"]}]}`,
			`{"x":1,"y":{"string":"z"}}`, `STRUCT(x INTEGER, y VARCHAR)`, `{'x': 1, 'y': z}`},
		{"array", `{"type":"array","items":"long"}`, `[1,2,3]`, "BIGINT[]", "[1, 2, 3]"},
		{"array of records", `{"type":"array","items":{"type":"record","name":"P","fields":[{"name":"k","type":"string"}]}}`, `[{"k":"a"},{"k":"b"}]`,
			`STRUCT(k VARCHAR)[]`, `[{'k': a}, {'k': b}]`},
		{"map", `{"type":"map","values":"double"}`, `{"a":1.5}`, "MAP(VARCHAR, DOUBLE)", "{a=1.5}"},
		{"nullable null", `["null","string"]`, `null`, "VARCHAR", "NULL"},
		{"nullable value", `["null","string"]`, `{"string":"s"}`, "VARCHAR", "s"},
		{"nullable, null last", `["long","null"]`, `{"long":5}`, "BIGINT", "5"},
		{"single-branch union", `["int"]`, `{"int":3}`, "INTEGER", "3"},
		{"complex union", `["null","int","string"]`, `{"string":"x"}`, `STRUCT(member0 INTEGER, member1 VARCHAR)`, `{'member0': NULL, 'member1': x}`},
		{"date", `{"type":"int","logicalType":"date"}`, `20417`, "DATE", "2025-11-25"},
		{"time-millis", `{"type":"int","logicalType":"time-millis"}`, `3723004`, "TIME", "01:02:03.004"},
		{"time-micros", `{"type":"long","logicalType":"time-micros"}`, `3723000005`, "TIME", "01:02:03.000005"},
		{"timestamp-millis", `{"type":"long","logicalType":"timestamp-millis"}`, `1764072000123`, "TIMESTAMP WITH TIME ZONE", "2025-11-25 12:00:00.123+00"},
		{"timestamp-micros", `{"type":"long","logicalType":"timestamp-micros"}`, `1764072000123456`, "TIMESTAMP WITH TIME ZONE", "2025-11-25 12:00:00.123456+00"},
		{"timestamp-nanos as micros", `{"type":"long","logicalType":"timestamp-nanos"}`, `1764072000123456789`, "TIMESTAMP WITH TIME ZONE", "2025-11-25 12:00:00.123456+00"},
		{"local-timestamp-millis", `{"type":"long","logicalType":"local-timestamp-millis"}`, `1764072000000`, "TIMESTAMP", "2025-11-25 12:00:00"},
		{"decimal bytes", `{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`, `"\u0004\u00d2"`, "DECIMAL(9,2)", "12.34"},
		{"negative decimal", `{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`, `"\u00fb\u002e"`, "DECIMAL(9,2)", "-12.34"},
		{"decimal fixed", `{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":18,"scale":4}`, `"\u0000\u0000\u0000\u0000\u0000\u0000\u0030\u0039"`, "DECIMAL(18,4)", "1.2345"},
		{"wide decimal as text", `{"type":"bytes","logicalType":"decimal","precision":40,"scale":3}`, `"\u00fb\u002e"`, "VARCHAR", "-1.234"},
		{"uuid", `{"type":"string","logicalType":"uuid"}`, `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`, "VARCHAR", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			schema := fmt.Sprintf(`{"type":"record","name":"R%d","fields":[{"name":"v","type":%s}]}`, i, c.avro)
			path := writeFile(t, dir, fmt.Sprintf("f%d.parquet", i), schema, schema, `{"v":`+c.json+`}`)
			res := duck(t, []query.View{{Name: "t", Files: []string{path}}}, "SELECT typeof(v), v::VARCHAR FROM t")
			if len(res.Rows) != 1 {
				t.Fatalf("%d rows", len(res.Rows))
			}
			if got := str(res.Rows[0][0]); got != c.sqlType {
				t.Errorf("type %s, want %s", got, c.sqlType)
			}
			if got := str(res.Rows[0][1]); got != c.value {
				t.Errorf("value %s, want %s", got, c.value)
			}
		})
	}
}

// A file written with a newer schema takes older records projected: a field the writer lacks takes its
// default or NULL, promotions apply, renamed fields follow the reader's aliases, unknown fields are skipped.
func TestProjection(t *testing.T) {
	old := `{"type":"record","name":"U","fields":[{"name":"name","type":"string"},{"name":"n","type":"int"},{"name":"gone","type":"string"},{"name":"old_city","type":"string"}]}`
	newer := `{"type":"record","name":"U","fields":[{"name":"name","type":"string"},{"name":"n","type":"long"},` +
		`{"name":"lastname","type":["null","string"],"default":null},{"name":"score","type":"double","default":0.5},` +
		`{"name":"city","type":"string","aliases":["old_city"]},{"name":"tags","type":{"type":"array","items":"string"},"default":["x"]}]}`
	dir := t.TempDir()
	path := writeFile(t, dir, "p.parquet", old, newer, `{"name":"alice","n":7,"gone":"x","old_city":"Paris"}`)
	res := duck(t, []query.View{{Name: "t", Files: []string{path}}},
		"SELECT name, n, typeof(n), lastname, score, city, tags::VARCHAR FROM t")
	got := fmt.Sprint(func() []string {
		var out []string
		for _, v := range res.Rows[0] {
			out = append(out, str(v))
		}
		return out
	}())
	if want := "[alice 7 BIGINT NULL 0.5 Paris [x]]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// Files of two schema versions read as one table: the new column is NULL for old rows.
func TestSchemaEvolutionAcrossFiles(t *testing.T) {
	v1 := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`
	v2 := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`
	dir := t.TempDir()
	a := writeFile(t, dir, "a.parquet", v1, v1, `{"name":"alice"}`)
	b := writeFile(t, dir, "b.parquet", v2, v2, `{"name":"bob","lastname":{"string":"smith"}}`)
	res := duck(t, []query.View{{Name: "connect_test", Files: []string{a, b}}}, "SELECT name, lastname FROM connect_test ORDER BY name")
	if len(res.Rows) != 2 || str(res.Rows[0][0]) != "alice" || res.Rows[0][1] != nil || str(res.Rows[1][1]) != "smith" {
		t.Fatalf("rows %v", res.Rows)
	}
}
