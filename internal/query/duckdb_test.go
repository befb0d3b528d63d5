package query

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFormats renders one result in each output format: NULL as NULL, an empty CSV field and JSON null;
// nested values as JSON.
func TestWriteFormats(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Query(ctx, `SELECT * FROM (VALUES ('alice', NULL::VARCHAR, 1.5::DOUBLE, [1, 2]), ('bob', 'smith, "jr"', NULL, []::INTEGER[])) v(name, lastname, score, tags) ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	one, err := db.Query(ctx, `SELECT 42 AS answer`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, format string
		res          *Result
		want         string
	}{
		{"table", "table", res, "" +
			"name  | lastname    | score | tags\n" +
			"----  | --------    | ----- | ----\n" +
			"alice | NULL        | 1.5   | [1,2]\n" +
			"bob   | smith, \"jr\" | NULL  | []\n" +
			"(2 rows)\n"},
		{"table, one row", "", one, "answer\n------\n42\n(1 row)\n"},
		{"csv", "csv", res, "" +
			"name,lastname,score,tags\n" +
			"alice,,1.5,\"[1,2]\"\n" +
			"bob,\"smith, \"\"jr\"\"\",,[]\n"},
		{"json", "json", res, "" +
			`{"name":"alice","lastname":null,"score":1.5,"tags":[1,2]}` + "\n" +
			`{"name":"bob","lastname":"smith, \"jr\"","score":null,"tags":[]}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.res.Write(&b, tc.format); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
	if err := res.Write(&bytes.Buffer{}, "xml"); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}

// TestViews reads a table whose files have different columns (an older schema version lacks one) from a
// Hive-style partition path, and a table with no file yet.
func TestViews(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	part := filepath.Join(dir, "users", "dt=2026-11-25")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	f1, f2 := filepath.Join(part, "a.parquet"), filepath.Join(part, "b.parquet")
	raw, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`COPY (SELECT 'alice' AS name) TO '` + f1 + `' (FORMAT parquet)`,
		`COPY (SELECT 'bob' AS name, 'smith' AS lastname) TO '` + f2 + `' (FORMAT parquet)`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db, err := Open(ctx, []View{
		{Name: "users", Files: []string{f1, f2}, PartitionFields: []string{"dt"}},
		{Name: "empty", PartitionFields: []string{"dt"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Query(ctx, `SELECT name, lastname, dt, typeof(dt) FROM users ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.Write(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	want := "name,lastname,dt,typeof(dt)\nalice,,2026-11-25,VARCHAR\nbob,smith,2026-11-25,VARCHAR\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	res, err = db.Query(ctx, `SELECT count(*) FROM empty`)
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Rows[0][0]; got != "0" {
		t.Fatalf("empty table counts %s rows", got)
	}
}
