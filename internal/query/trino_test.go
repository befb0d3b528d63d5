package query

import (
	"errors"
	"testing"
)

func TestTrinoCheck(t *testing.T) {
	for _, c := range []struct {
		sql string
		ok  bool
	}{
		{"SELECT name FROM connect_test", true},
		{"  -- a comment\n  select 1", true},
		{"/* x */ WITH a AS (SELECT 1) SELECT * FROM a", true},
		{"(SELECT 1) UNION (SELECT 2)", true},
		{"SHOW TABLES", true},
		{"DESCRIBE connect_test", true},
		{"EXPLAIN SELECT 1", true},
		{"VALUES 1, 2", true},
		{"SELECT ';' AS semicolon", true},
		{`SELECT 1 AS "a;b";`, true},
		{"EXPLAIN ANALYZE INSERT INTO t SELECT 1", false},
		{"EXPLAIN (TYPE DISTRIBUTED) ANALYZE SELECT 1", false},
		{"INSERT INTO t VALUES (1)", false},
		{"CREATE TABLE t AS SELECT 1", false},
		{"CALL system.sync_partition_metadata('default', 't', 'FULL')", false},
		{"DELETE FROM t", false},
		{"DROP TABLE t", false},
		{"SELECT 1; DROP TABLE t", false},
		{"SELECT 1 -- ; \n; DROP TABLE t", false},
		{"SET SESSION query_max_run_time = '1h'", false},
		{"ALTER TABLE t ADD COLUMN c int", false},
		{"--\rINSERT INTO t VALUES (1) /*\nSELECT 1 */", false},
		{"EXPLAIN --\rANALYZE INSERT INTO t SELECT 1", false},
		{"--\rCALL system.drop_stats('default', 't') /*\nSELECT */", false},
		{"SELECT * FROM TABLE(pg.system.query(query => 'DELETE FROM x'))", false},
		{"SELECT * FROM table (x.system.query(query => 'x'))", false},
		{"SELECT 'TABLE(' AS s", true},
		{`SELECT "table"(1)`, true},
		{"", false},
		{"-- only a comment", false},
	} {
		err := trinoCheck(c.sql)
		var fe *ForbiddenError
		if c.ok && err != nil || !c.ok && !errors.As(err, &fe) {
			t.Errorf("%q: %v", c.sql, err)
		}
	}
}
