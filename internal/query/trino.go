package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	_ "github.com/trinodb/trino-go-client/trino" // registers the "trino" driver
)

// Trino runs read-only statements on a Trino coordinator, through its HTTP protocol (trino-go-client).
type Trino struct {
	db      *sql.DB
	catalog string
	schema  string
}

// OpenTrino prepares a Trino client for base (http://[user@]host:port). Statements run as user (from the URL,
// else "minipipe"), in catalog and schema: give Trino's access control a read-only rule for that user.
func OpenTrino(base, catalog, schema string) (*Trino, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--trino %q: give http://host:port or https://host:port", redactURL(base))
	}
	if u.User == nil || u.User.Username() == "" {
		u.User = url.User("minipipe")
	}
	if catalog == "" {
		catalog = "hive"
	}
	if schema == "" {
		schema = "default"
	}
	q := u.Query()
	q.Set("catalog", catalog)
	q.Set("schema", schema)
	q.Set("source", "minipipe-console")
	u.RawQuery = q.Encode()
	u.Path = ""
	db, err := sql.Open("trino", u.String())
	if err != nil {
		return nil, fmt.Errorf("trino: %w", err)
	}
	db.SetMaxIdleConns(4)
	return &Trino{db: db, catalog: catalog, schema: schema}, nil
}

// redactURL drops a password from a URL, for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// Close closes the client.
func (t *Trino) Close() error { return t.db.Close() }

// Catalog and Schema are where unqualified table names resolve.
func (t *Trino) Catalog() string { return t.catalog }

// Schema is the schema unqualified names resolve in.
func (t *Trino) Schema() string { return t.schema }

// ReadOnly runs one query statement (SELECT, WITH, VALUES, TABLE, SHOW, DESCRIBE, EXPLAIN without ANALYZE)
// within the limits; anything else is refused before it reaches Trino. Trino itself runs one statement per
// request. The check is on the statement's first keyword: Trino has no data-changing statement that starts
// with one of these (EXPLAIN ANALYZE, which runs its statement, is refused).
func (t *Trino) ReadOnly(ctx context.Context, sqlText string, lim Limits) (*Result, error) {
	lim.defaults()
	if err := trinoCheck(sqlText); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	rows, err := t.db.QueryContext(ctx, sqlText)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("the statement ran longer than %s and was cancelled", lim.Timeout)
		}
		return nil, err
	}
	defer rows.Close()
	res, err := collectBounded(rows, lim.MaxRows, lim.MaxBytes)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("the statement ran longer than %s and was cancelled", lim.Timeout)
	}
	return res, err
}

// trinoCheck refuses what is not a single query statement.
func trinoCheck(sqlText string) error {
	text := code(sqlText)
	words := keywords(text, 64)
	if len(words) == 0 {
		return &ForbiddenError{Reason: "no statement given"}
	}
	switch words[0] {
	case "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "(":
	case "EXPLAIN":
		for _, w := range words {
			if strings.Trim(w, "(),") == "ANALYZE" {
				return &ForbiddenError{Reason: "EXPLAIN ANALYZE runs its statement: not here (read-only)"}
			}
		}
	default:
		return &ForbiddenError{Reason: "only query statements run here (read-only): " + words[0] + " is not one"}
	}
	if strings.Contains(strings.TrimRight(text, "; \t\r\n"), ";") {
		return &ForbiddenError{Reason: "one statement at a time"}
	}
	// Table functions may pass a statement through to another system (system.query of JDBC catalogs).
	if tableFunction.MatchString(text) {
		return &ForbiddenError{Reason: "table functions do not run here (read-only): TABLE(...) may pass a statement to another system"}
	}
	return nil
}

var tableFunction = regexp.MustCompile(`(?i)\bTABLE\s*\(`)

// keywords are the first n words of a statement (passed through code), upper-cased.
func keywords(s string, n int) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if strings.HasPrefix(f, "(") {
			out = append(out, "(")
			f = strings.TrimLeft(f, "(")
			if f == "" {
				continue
			}
		}
		out = append(out, strings.ToUpper(strings.TrimRight(f, ";(")))
		if len(out) >= n {
			break
		}
	}
	return out
}

// code blanks what is not SQL code: -- and /* */ comments, and the contents of quoted strings and identifiers
// (their quotes stay), so that keywords, ';' and TABLE( are looked for only where Trino reads them.
func code(s string) string {
	b := []byte(s)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b[i] = ' '
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && i+1 < len(b) && b[i+1] == '-':
			// Trino ends a line comment at \r as well as \n (SIMPLE_COMMENT in its grammar).
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				b[i] = ' '
				i++
			}
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			j := i
			for j < len(b) && !(b[j] == '*' && j+1 < len(b) && b[j+1] == '/') {
				b[j] = ' '
				j++
			}
			for k := j; k < len(b) && k < j+2; k++ {
				b[k] = ' '
			}
			i = j + 1
		}
	}
	return string(b)
}
