package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minipipe/minipipe/internal/auth"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/state"
)

// harness is a console on an in-process broker (franz-go's kfake) with a fixed snapshot of one table.
type harness struct {
	c    *Console
	srv  *httptest.Server
	kcfg kafka.Config
	gk   *kafka.Goka
}

func newHarness(t *testing.T, brokers []string, topic string) *harness {
	t.Helper()
	snap := &Snapshot{Tables: []Table{{Name: "events", Generation: 1, Location: "events", PartitionColumns: []string{"dt"}, SchemaIDs: []int{}}},
		Topics: []Topic{{Name: "events", Table: "events", Partitions: []TopicPartition{}}}}
	root := t.TempDir()
	return newHarnessWith(t, brokers, topic, Deps{
		Snapshot: func(context.Context) (*Snapshot, error) { return snap, nil },
		Views: func(tables []Table) ([]query.View, []string, error) {
			return []query.View{{Name: "events", PartitionFields: []string{"dt"}}}, []string{root}, nil
		},
	})
}

func newHarnessWith(t testing.TB, brokers []string, topic string, deps Deps) *harness {
	t.Helper()
	kcfg := kafka.Config{Brokers: brokers, ClientID: "console-test", ReplicationFactor: 1}
	gk := kafka.NewGoka(kcfg, 1, state.Builder(filepath.Join(t.TempDir(), "state"), state.Options{}))
	c, err := New(Config{Topic: topic, Interval: time.Second, Limits: query.Limits{Timeout: 5 * time.Second, MaxRows: 100}}, deps, kcfg, gk, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for !c.store.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the console store did not load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &harness{c: c, srv: srv, kcfg: kcfg, gk: gk}
}

func embedded(t testing.TB) []string {
	t.Helper()
	e, err := kafka.StartEmbedded("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Brokers()
}

func (h *harness) do(t *testing.T, method, path, body string, headers ...string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

// TestSavedQueriesAndDashboards: saved objects go through the console topic, are checked, and a second
// instance on the same topic shows them.
func TestSavedQueriesAndDashboards(t *testing.T) {
	brokers := embedded(t)
	a := newHarness(t, brokers, "_console_test")
	status, q, body := a.do(t, "POST", "/console/api/queries", `{"name":"per day","sql":"SELECT dt, count(*) AS n FROM events GROUP BY dt","chart":{"type":"bar","x":"dt","y":["n"]}}`)
	if status != 200 || q["id"] == "" {
		t.Fatalf("save query: %d %s", status, body)
	}
	id := q["id"].(string)
	status, d, body := a.do(t, "POST", "/console/api/dashboards", fmt.Sprintf(`{"name":"ops","refresh":30,"items":[{"query":%q,"x":0,"y":0,"w":6,"h":4}]}`, id))
	if status != 200 {
		t.Fatalf("save dashboard: %d %s", status, body)
	}
	did := d["id"].(string)
	for _, c := range []struct{ path, body, want string }{
		{"/console/api/queries", `{"name":"","sql":"SELECT 1"}`, "a name is required"},
		{"/console/api/queries", `{"name":"x","sql":"SELECT 1","chart":{"type":"radar"}}`, "chart type"},
		{"/console/api/queries", `{"name":"x","sql":"SELECT 1","engine":"mysql"}`, "engine"},
		{"/console/api/dashboards", `{"name":"x","items":[{"query":"nosuch","x":0,"y":0,"w":6,"h":4}]}`, "no saved query"},
		{"/console/api/dashboards", fmt.Sprintf(`{"name":"x","items":[{"query":%q,"x":8,"y":0,"w":6,"h":4}]}`, id), "12-column grid"},
		{"/console/api/dashboards", `{"name":"x","refresh":1,"items":[]}`, "refresh"},
		{"/console/api/dashboards/..%2f..%2fetc", `{"name":"x","items":[]}`, ""},
	} {
		method := "POST"
		if strings.Count(c.path, "/") > 3 {
			method = "PUT"
		}
		status, m, body := a.do(t, method, c.path, c.body)
		if status < 400 || (c.want != "" && !strings.Contains(fmt.Sprint(m["message"]), c.want)) {
			t.Errorf("%s %s: %d %s, want an error saying %q", c.path, c.body, status, body, c.want)
		}
	}
	// A second instance reads the same topic into its own Pebble view.
	b := newHarness(t, brokers, "_console_test")
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, m, body := b.do(t, "GET", "/console/api/dashboards/"+did, "")
		if status == 200 {
			dash := m["dashboard"].(map[string]any)
			qs := m["queries"].(map[string]any)
			if dash["name"] != "ops" || qs[id] == nil {
				t.Fatalf("the other instance shows %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other instance does not show the dashboard: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Deleted through b, gone on a as soon as b answered... once a has read it.
	if status, _, body := b.do(t, "DELETE", "/console/api/dashboards/"+did, ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if status, _, _ := a.do(t, "GET", "/console/api/dashboards/"+did, ""); status == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted dashboard is still shown by the other instance")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadOnlySQLOverHTTP: every forbidden statement is refused with a clear message and Confluent-style
// error code; a SELECT answers as JSON and as RFC 4180 CSV.
func TestReadOnlySQLOverHTTP(t *testing.T) {
	h := newHarness(t, embedded(t), "_console_sql")
	for _, stmt := range []string{
		"COPY events TO '/tmp/stolen.csv'",
		"ATTACH '/tmp/other.db' AS other",
		"INSTALL httpfs",
		"LOAD httpfs",
		"CREATE TABLE t AS SELECT 1",
		"INSERT INTO events VALUES (1)",
		"DROP VIEW events",
		"SET enable_external_access = true",
		"PRAGMA version",
		"SELECT 1; SELECT 2",
		"EXPORT DATABASE '/tmp/x'",
		"CALL pragma_version()",
	} {
		body, _ := json.Marshal(map[string]string{"sql": stmt})
		status, m, raw := h.do(t, "POST", "/console/api/sql", string(body))
		msg := fmt.Sprint(m["message"])
		if status != 422 || m["error_code"] != float64(42205) || (!strings.Contains(msg, "read-only") && !strings.Contains(msg, "one statement")) {
			t.Errorf("%s: %d %s", stmt, status, raw)
		}
	}
	// Reading a file outside the warehouse is DuckDB's own refusal.
	status, m, raw := h.do(t, "POST", "/console/api/sql", `{"sql":"SELECT * FROM read_text('/etc/passwd')"}`)
	if status != 400 || !strings.Contains(strings.ToLower(fmt.Sprint(m["message"])), "permission") {
		t.Errorf("read_text outside the warehouse: %d %s", status, raw)
	}
	status, m, raw = h.do(t, "POST", "/console/api/sql", `{"sql":"SELECT 1 AS a, NULL AS b, 'x,\"y' AS c FROM range(3)"}`)
	if status != 200 || len(m["rows"].([]any)) != 3 {
		t.Fatalf("select: %d %s", status, raw)
	}
	status, _, raw = h.do(t, "POST", "/console/api/sql?format=csv", `{"sql":"SELECT 1 AS a, NULL AS b, 'x,\"y' AS c"}`)
	if status != 200 || raw != "a,b,c\r\n1,,\"x,\"\"y\"\r\n" {
		t.Fatalf("csv: %d %q", status, raw)
	}
	if status, m, raw := h.do(t, "POST", "/console/api/sql", `{"sql":"SELECT * FROM range(1000)"}`); status != 200 || m["truncated"] != true || len(m["rows"].([]any)) != 100 {
		t.Fatalf("row cap: %d %.200s", status, raw)
	}
	if status, _, raw := h.do(t, "POST", "/console/api/sql", `{"sql":"SELECT 1","engine":"trino"}`); status != 422 || !strings.Contains(raw, "--trino") {
		t.Fatalf("trino without --trino: %d %s", status, raw)
	}
	// A mistake gets the engine's own words.
	if status, m, raw := h.do(t, "POST", "/console/api/sql", `{"sql":"SELECT nosuch FROM events"}`); status != 400 || !strings.Contains(fmt.Sprint(m["message"]), "nosuch") {
		t.Fatalf("unknown column: %d %s", status, raw)
	}
	// Cancel: the page closes its request; the statement stops at once and is counted as cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/console/api/sql", strings.NewReader(`{"sql":"SELECT count(*) FROM range(100000000000) a"}`))
	req.Header.Set("Content-Type", "application/json")
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the long statement answered %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.c.metrics.queries.WithLabelValues("duckdb", "cancelled")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled statement was not stopped (counted %v) after %v", testutil.ToFloat64(h.c.metrics.queries.WithLabelValues("duckdb", "cancelled")), time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWritesRefusedCrossSite: the console's writes come from its own pages only (CSRF), and as JSON.
func TestWritesRefusedCrossSite(t *testing.T) {
	h := newHarness(t, embedded(t), "_console_csrf")
	cases := []struct {
		name    string
		headers []string
		ctype   string
		status  int
	}{
		{"another site (Sec-Fetch-Site)", []string{"Sec-Fetch-Site", "cross-site"}, "application/json", 403},
		{"another origin", []string{"Origin", "https://evil.example"}, "application/json", 403},
		{"a form", nil, "application/x-www-form-urlencoded", 415},
		{"text/plain (no preflight)", nil, "text/plain", 415},
		{"same origin", []string{"Sec-Fetch-Site", "same-origin"}, "application/json", 200},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", h.srv.URL+"/console/api/queries", strings.NewReader(`{"name":"x","sql":"SELECT 1"}`))
		req.Header.Set("Content-Type", c.ctype)
		for i := 0; i+1 < len(c.headers); i += 2 {
			req.Header.Set(c.headers[i], c.headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
	// Pages carry a strict content security policy and may not be framed.
	resp, err := http.Get(h.srv.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers: %v", resp.Header)
	}
}

func TestStoreChecks(t *testing.T) {
	var inv *InvalidError
	for _, q := range []Query{{Name: strings.Repeat("n", 300), SQL: "SELECT 1"}, {Name: "x", SQL: strings.Repeat("x", maxSQLBytes+1)}, {Name: "x", SQL: "\xff"}} {
		if err := q.check(); !errors.As(err, &inv) {
			t.Errorf("%.40q: %v", q.Name, err)
		}
	}
	for _, id := range []string{"", "ABC", "../x", strings.Repeat("a", 33), "a/b"} {
		if validID(id) {
			t.Errorf("id %q taken as valid", id)
		}
	}
}

func jsonDecode(r io.Reader, into any) error { return json.NewDecoder(r).Decode(into) }

// TestOwnersAndRoles: with a users file, any reader saves queries and dashboards, only their author or an
// admin changes or deletes them, and only an admin re-drives dead letters.
func TestOwnersAndRoles(t *testing.T) {
	h := newHarness(t, embedded(t), "_console_roles")
	users := []auth.User{}
	for name, roles := range map[string][]auth.Role{"ann": {auth.Reader}, "bob": {auth.Reader}, "root": {auth.Reader, auth.Admin}} {
		hash, err := auth.HashPassword([]byte(name + "-pw"))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, auth.User{Name: name, Hash: hash, Roles: roles})
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, auth.FormatFile(users), 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Protect(authn, auth.OpsRule, h.c.Handler()))
	defer srv.Close()
	as := func(user, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.SetBasicAuth(user, user+"-pw")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := as("ann", "POST", "/console/api/queries", `{"name":"ann's","sql":"SELECT 1"}`)
	var q Query
	if status != 200 || json.Unmarshal([]byte(body), &q) != nil || q.By != "ann" {
		t.Fatalf("ann saves: %d %s", status, body)
	}
	if status, body := as("bob", "PUT", "/console/api/queries/"+q.ID, `{"name":"bob's now","sql":"SELECT 2"}`); status != 403 || !strings.Contains(body, "saved by ann") {
		t.Fatalf("bob overwrites ann's query: %d %s", status, body)
	}
	if status, body := as("bob", "DELETE", "/console/api/queries/"+q.ID, ""); status != 403 {
		t.Fatalf("bob deletes ann's query: %d %s", status, body)
	}
	if status, body := as("ann", "PUT", "/console/api/queries/"+q.ID, `{"name":"ann's v2","sql":"SELECT 2"}`); status != 200 {
		t.Fatalf("ann changes her query: %d %s", status, body)
	}
	if status, body := as("root", "DELETE", "/console/api/queries/"+q.ID, ""); status != 204 {
		t.Fatalf("an admin deletes it: %d %s", status, body)
	}
	if status, body := as("ann", "POST", "/console/api/deadletters/events/redrive", `{"records":[{"partition":0,"offset":0}]}`); status != 403 {
		t.Fatalf("a reader re-drives: %d %s", status, body)
	}
	// Without users, only addresses and localhost are served (DNS rebinding).
	req, _ := http.NewRequest("GET", h.srv.URL+"/console/api/tables", nil)
	req.Host = "attacker.example:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a rebound host name: %d", resp.StatusCode)
	}
	for _, host := range []string{"localhost:8080", "127.0.0.1", "[::1]:8080", "console.localhost"} {
		if !localHost(host) {
			t.Errorf("%s refused", host)
		}
	}
}
