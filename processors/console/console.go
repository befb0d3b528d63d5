// Package console is minipipe's web console on --http-addr: what Redash was to the seed (SQL over the
// tables, charts, saved queries, dashboards) and a control room for the pipeline (tables and their
// partitions, schema versions, the registry, dead letters with re-drive). Its pages are static files
// embedded in the binary; they call the JSON API below /console/api/. Saved queries, dashboards and re-drives
// are event-sourced through a compacted topic (Store), so every instance shows the same.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minipipe/minipipe/internal/auth"
	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/query"
)

//go:embed assets
var assets embed.FS

// Config is the console's configuration.
type Config struct {
	Topic    string        // the compacted topic of saved queries and dashboards (default _minipipe_console)
	Interval time.Duration // how often the overview is read while pages are open (default 5s)
	Limits   query.Limits  // per statement of the SQL page
	Memory   string        // DuckDB's memory cap (default 1GB)
	Trino    string        // http://[user@]host:port: the SQL page can run on Trino too
	Catalog  string        // Trino catalog of the tables (default hive)
	Schema   string        // Trino schema of the tables (default default)
	// AnyHost serves requests for any Host without users too (--insecure-no-auth: the operator exposed
	// minipipe knowingly); otherwise they must name an IP address or localhost.
	AnyHost bool
}

func (c *Config) defaults() {
	if c.Topic == "" {
		c.Topic = "_minipipe_console"
	}
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Memory == "" {
		c.Memory = "1GB"
	}
}

// Deps is what the console reads from the rest of minipipe.
type Deps struct {
	Snapshot Source
	// Views are the DuckDB views of the tables and the local directories they may read; nil when the
	// warehouse is not local (then SQL runs on Trino, if configured).
	Views func(tables []Table) ([]query.View, []string, error)
	// Complete reports which partitions of a table are marked complete (_SUCCESS).
	Complete func(table Table) map[string]bool
	// Schema returns a schema by id, parsed and as registered.
	Schema   func(id int) (*avro.Schema, string, error)
	Decode   Decoder
	Registry http.Handler // the Schema Registry API, served below /console/api/registry/
	// Subjects lists the registry's subjects with their versions and effective compatibility levels, for
	// the registry page (one answer, however many subjects).
	Subjects func() ([]Subject, error)
	Metrics  prometheus.Registerer
}

// Subject is a registry subject as the registry page lists it.
type Subject struct {
	Name          string `json:"subject"`
	Versions      []int  `json:"versions"`
	IDs           []int  `json:"ids"`
	Compatibility string `json:"compatibility"`
}

// Console serves the pages and their API.
type Console struct {
	cfg   Config
	deps  Deps
	kcfg  kafka.Config
	log   *slog.Logger
	store *Store
	snaps *snapshots

	decode    Decoder
	trino     *query.Trino
	metrics   metrics
	kafkaSem  chan struct{} // dead-letter reads and re-drives at once
	redriving sync.Map      // dead letters being re-driven in this instance

	handler http.Handler

	dbMu    sync.Mutex
	closed  bool // Run has ended: no new DuckDB
	db      *duck
	dbViews string // the views db was made with
}

type metrics struct {
	queries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	redriven *prometheus.CounterVec
}

// New prepares the console; Run starts its background work.
func New(cfg Config, deps Deps, kcfg kafka.Config, gk *kafka.Goka, log *slog.Logger) (*Console, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	c := &Console{cfg: cfg, deps: deps, kcfg: kcfg, log: log.With("component", "console"), decode: deps.Decode}
	c.metrics = metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_console_queries_total",
			Help: "Statements run from the console's SQL page, by engine and outcome (ok, error, forbidden, cancelled)."}, []string{"engine", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "minipipe_console_query_seconds",
			Help: "Time of the console's statements, by engine.", Buckets: prometheus.ExponentialBuckets(0.005, 3, 10)}, []string{"engine"}),
		redriven: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_console_redriven_total",
			Help: "Dead letters sent back to their source topic from the console, by source topic."}, []string{"topic"}),
	}
	if deps.Metrics != nil {
		for i, m := range []prometheus.Collector{c.metrics.queries, c.metrics.duration, c.metrics.redriven} {
			if err := deps.Metrics.Register(m); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) { // a console started again keeps counting where the last one stopped
					return nil, fmt.Errorf("console metrics: %w", err)
				}
				switch i {
				case 0:
					c.metrics.queries = are.ExistingCollector.(*prometheus.CounterVec)
				case 1:
					c.metrics.duration = are.ExistingCollector.(*prometheus.HistogramVec)
				case 2:
					c.metrics.redriven = are.ExistingCollector.(*prometheus.CounterVec)
				}
			}
		}
	}
	if cfg.Trino != "" {
		t, err := query.OpenTrino(cfg.Trino, cfg.Catalog, cfg.Schema)
		if err != nil {
			return nil, err
		}
		c.trino = t
	}
	var err error
	if c.store, err = NewStore(cfg.Topic, kcfg, gk, c.log); err != nil {
		return nil, err
	}
	c.kafkaSem = make(chan struct{}, 2)
	c.snaps = newSnapshots(deps.Snapshot, cfg.Interval)
	c.handler = c.buildHandler()
	return c, nil
}

// Store is the console's shared state.
func (c *Console) Store() *Store { return c.store }

// Run runs the store's view and the overview's refresher until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	go c.snaps.run(ctx)
	err := c.store.Run(ctx)
	if c.trino != nil {
		c.trino.Close()
	}
	c.dbMu.Lock()
	if c.db != nil {
		c.db.release()
		c.db, c.dbViews = nil, ""
	}
	c.closed = true
	c.dbMu.Unlock()
	return err
}

// --- HTTP -------------------------------------------------------------------------------------------

// apiError is the console's error body, in the shape of Confluent's (and of the 401/403 answers).
type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, format string, args ...any) {
	writeJSON(w, status, apiError{Code: code, Message: fmt.Sprintf(format, args...)})
}

// failErr answers an error with the status its kind asks for.
func failErr(w http.ResponseWriter, err error) {
	var inv *InvalidError
	var forb *query.ForbiddenError
	switch {
	case errors.As(err, &inv):
		fail(w, http.StatusUnprocessableEntity, 42201, "%s", inv.Reason)
	case errors.As(err, &forb):
		fail(w, http.StatusUnprocessableEntity, 42205, "%s", forb.Reason)
	case errors.Is(err, errNotFound):
		fail(w, http.StatusNotFound, 40401, "%s", err.Error())
	case errors.Is(err, context.Canceled):
		fail(w, 499, 49901, "cancelled")
	default:
		fail(w, http.StatusInternalServerError, 50001, "%s", err.Error())
	}
}

const maxBody = 1 << 20

// readJSON decodes a request body; API writes must be JSON, which a cross-site form cannot send.
func readJSON(w http.ResponseWriter, r *http.Request, into any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, 41501, "send the body as application/json")
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		fail(w, http.StatusBadRequest, 40001, "the body is not the JSON expected: %s", err.Error())
		return false
	}
	return true
}

// Handler serves the console below /console/ (and / redirects there). Writes are refused when they come
// from another site (CSRF: Sec-Fetch-Site and Origin, net/http's CrossOriginProtection) and must be JSON.
func (c *Console) Handler() http.Handler { return c.handler }

func (c *Console) buildHandler() http.Handler {
	mux := http.NewServeMux()
	static, _ := iofs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /console/", func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/console/")
		if p == "" || !strings.Contains(p, ".") {
			p = "index.html"
		}
		if p == "index.html" { // every page of the application (its routes are in the fragment)
			b, _ := iofs.ReadFile(static, "index.html")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(b)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + p
		files.ServeHTTP(w, r2)
	})
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	mux.HandleFunc("GET /console/api/info", c.info)
	mux.HandleFunc("GET /console/api/overview", c.overview)
	mux.HandleFunc("GET /console/api/tables", c.tables)
	mux.HandleFunc("GET /console/api/tables/{name}", c.table)
	mux.HandleFunc("GET /console/api/completions", c.completions)
	mux.HandleFunc("GET /console/api/subjects", c.subjects)
	mux.HandleFunc("POST /console/api/sql", c.sql)
	mux.HandleFunc("GET /console/api/queries", c.listQueries)
	mux.HandleFunc("POST /console/api/queries", c.saveQuery)
	mux.HandleFunc("GET /console/api/queries/{id}", c.getQuery)
	mux.HandleFunc("PUT /console/api/queries/{id}", c.saveQuery)
	mux.HandleFunc("DELETE /console/api/queries/{id}", c.deleteQuery)
	mux.HandleFunc("GET /console/api/dashboards", c.listDashboards)
	mux.HandleFunc("POST /console/api/dashboards", c.saveDashboard)
	mux.HandleFunc("GET /console/api/dashboards/{id}", c.getDashboard)
	mux.HandleFunc("PUT /console/api/dashboards/{id}", c.saveDashboard)
	mux.HandleFunc("DELETE /console/api/dashboards/{id}", c.deleteDashboard)
	mux.HandleFunc("GET /console/api/deadletters", c.deadLetterTopics)
	mux.HandleFunc("GET /console/api/deadletters/{topic}", c.deadLetters)
	mux.HandleFunc("POST /console/api/deadletters/{topic}/redrive", c.redriveHandler)
	if c.deps.Registry != nil {
		h := http.StripPrefix("/console/api/registry", c.deps.Registry)
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			mux.Handle(m+" /console/api/registry/", h)
		}
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusForbidden, 40302, "cross-site request refused: the console's forms are sent from its own pages only")
	}))
	return csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.Principal(r.Context()) == "" && !c.cfg.AnyHost && !localHost(r.Host) {
			// Without users, a page of another site could reach the console through a DNS name it points at
			// 127.0.0.1 (DNS rebinding): only addresses and localhost are served then.
			fail(w, http.StatusForbidden, 40304, "host %q refused: without --auth-file the console answers only requests to an IP address or localhost", r.Host)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
		mux.ServeHTTP(w, r)
	}))
}

// localHost reports whether a Host header names an IP address or localhost.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

func (c *Console) info(w http.ResponseWriter, r *http.Request) {
	engines := []string{}
	if c.deps.Views != nil {
		engines = append(engines, "duckdb")
	}
	if c.trino != nil {
		engines = append(engines, "trino")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"engines": engines, "user": auth.Principal(r.Context()), "topic": c.cfg.Topic,
		"limits":      map[string]any{"timeout_seconds": c.cfg.Limits.Timeout.Seconds(), "max_rows": c.cfg.Limits.MaxRows},
		"store_ready": c.store.Ready(),
	})
}

// overview is the first page: topics and tables without their partitions.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	snap, err := c.snaps.get(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	tables := make([]Table, len(snap.Tables))
	for i, t := range snap.Tables {
		t.Partitions = nil
		tables[i] = t
	}
	writeJSON(w, http.StatusOK, map[string]any{"taken": snap.Taken, "took_ms": snap.Took.Milliseconds(), "tables": tables,
		"topics": snap.Topics, "restarts": snap.Restarts, "errors": snap.Errors, "now": time.Now().UTC()})
}

func (c *Console) tables(w http.ResponseWriter, r *http.Request) {
	snap, err := c.snaps.get(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	type row struct {
		Name       string    `json:"name"`
		Topic      string    `json:"topic,omitempty"`
		Partitions int       `json:"partitions"`
		Files      int64     `json:"files"`
		Rows       int64     `json:"rows"`
		Bytes      int64     `json:"bytes"`
		Versions   int       `json:"versions"`
		LastCommit time.Time `json:"last_commit"`
		RowsPerSec float64   `json:"rows_per_sec"`
	}
	out := make([]row, len(snap.Tables))
	for i, t := range snap.Tables {
		out[i] = row{t.Name, t.Topic, len(t.Partitions), t.Files, t.Rows, t.Bytes, len(t.SchemaIDs), t.LastCommit, t.RowsPerSec}
	}
	writeJSON(w, http.StatusOK, map[string]any{"taken": snap.Taken, "tables": out})
}

// Column is a table column as the newest schema has it (partition columns last).
type Column struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Nullable  bool   `json:"nullable,omitempty"`
	Partition bool   `json:"partition,omitempty"`
	Doc       string `json:"doc,omitempty"`
}

// SchemaVersion is one schema a table's files were written with.
type SchemaVersion struct {
	ID     int      `json:"id"`
	Schema string   `json:"schema"`
	Fields []Column `json:"fields"`
	Error  string   `json:"error,omitempty"`
}

func typeString(s *avro.Schema) (string, bool) {
	nullable := false
	if s.Nullable() {
		nullable = true
		s = s.NonNull()
	}
	t := s.TypeName()
	switch {
	case s.LogicalType == "decimal":
		t = fmt.Sprintf("decimal(%d,%d)", s.Precision, s.Scale)
	case s.LogicalType != "":
		t = s.LogicalType
	case s.Items != nil:
		it, _ := typeString(s.Items)
		t = "array<" + it + ">"
	case s.Values != nil:
		vt, _ := typeString(s.Values)
		t = "map<string," + vt + ">"
	case len(s.Branches) > 0:
		parts := make([]string, len(s.Branches))
		for i, b := range s.Branches {
			parts[i], _ = typeString(b)
		}
		t = "union<" + strings.Join(parts, ",") + ">"
	}
	return t, nullable
}

func (c *Console) schemaVersion(id int) SchemaVersion {
	v := SchemaVersion{ID: id, Fields: []Column{}}
	if c.deps.Schema == nil {
		v.Error = "no registry"
		return v
	}
	s, text, err := c.deps.Schema(id)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Schema = text
	for _, f := range s.Fields {
		t, n := typeString(f.Type)
		v.Fields = append(v.Fields, Column{Name: f.Name, Type: t, Nullable: n, Doc: f.Doc})
	}
	return v
}

func (c *Console) columns(t *Table) []Column {
	cols := []Column{}
	if len(t.SchemaIDs) > 0 {
		ids := append([]int(nil), t.SchemaIDs...)
		sort.Ints(ids)
		cols = append(cols, c.schemaVersion(ids[len(ids)-1]).Fields...)
	}
	for _, p := range t.PartitionColumns {
		cols = append(cols, Column{Name: p, Type: "string", Partition: true})
	}
	return cols
}

// table is a table's own page: columns, schema versions, partitions with completeness, newest rows.
func (c *Console) table(w http.ResponseWriter, r *http.Request) {
	snap, err := c.snaps.get(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	t, ok := snap.table(r.PathValue("name"))
	if !ok {
		fail(w, http.StatusNotFound, 40401, "no table %q (yet): tables appear once their first file is committed", r.PathValue("name"))
		return
	}
	tc := *t
	tc.Partitions = append([]Partition(nil), t.Partitions...)
	if c.deps.Complete != nil {
		done := c.deps.Complete(tc)
		for i := range tc.Partitions {
			v := done[tc.Partitions[i].Path]
			tc.Partitions[i].Complete = &v
		}
	}
	ids := append([]int(nil), t.SchemaIDs...)
	sort.Ints(ids)
	versions := make([]SchemaVersion, 0, len(ids))
	for _, id := range ids {
		versions = append(versions, c.schemaVersion(id))
	}
	out := map[string]any{"table": tc, "columns": c.columns(t), "versions": versions}
	if newest, err := c.newestRows(r.Context(), &tc); err != nil {
		out["newest_error"] = err.Error()
	} else {
		out["newest"] = newest
	}
	writeJSON(w, http.StatusOK, out)
}

// newestRows reads the rows of the table's most recently committed partition (20 at most).
func (c *Console) newestRows(ctx context.Context, t *Table) (*resultJSON, error) {
	if len(t.Partitions) == 0 {
		return nil, errors.New("no file committed yet")
	}
	newest := t.Partitions[0]
	for _, p := range t.Partitions {
		if p.LastCommit.After(newest.LastCommit) {
			newest = p
		}
	}
	var where []string
	for _, kv := range strings.Split(newest.Path, "/") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			where = append(where, fmt.Sprintf(`"%s" = '%s'`, strings.ReplaceAll(k, `"`, `""`), strings.ReplaceAll(v, `'`, `''`)))
		}
	}
	stmt := fmt.Sprintf(`SELECT * FROM "%s"`, strings.ReplaceAll(t.Name, `"`, `""`))
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " LIMIT 20"
	engine := "duckdb"
	if c.deps.Views == nil {
		engine = "trino"
	}
	res, _, err := c.run(ctx, engine, stmt, query.Limits{Timeout: 10 * time.Second, MaxRows: 20})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// completions are the tables and their columns, for the SQL editor.
func (c *Console) completions(w http.ResponseWriter, r *http.Request) {
	snap, err := c.snaps.get(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	out := make(map[string][]string, len(snap.Tables))
	for i := range snap.Tables {
		cols := c.columns(&snap.Tables[i])
		names := make([]string, len(cols))
		for j, col := range cols {
			names[j] = col.Name
		}
		out[snap.Tables[i].Name] = names
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) subjects(w http.ResponseWriter, r *http.Request) {
	if c.deps.Subjects == nil {
		writeJSON(w, http.StatusOK, []Subject{})
		return
	}
	subs, err := c.deps.Subjects()
	if err != nil {
		failErr(w, err)
		return
	}
	if subs == nil {
		subs = []Subject{}
	}
	writeJSON(w, http.StatusOK, subs)
}

// --- saved queries and dashboards -------------------------------------------------------------------

func (c *Console) listQueries(w http.ResponseWriter, r *http.Request) {
	qs, err := c.store.Queries()
	if err != nil {
		failErr(w, err)
		return
	}
	if qs == nil {
		qs = []Query{}
	}
	writeJSON(w, http.StatusOK, qs)
}

func (c *Console) getQuery(w http.ResponseWriter, r *http.Request) {
	q, ok, err := c.store.Query(r.PathValue("id"))
	if err != nil {
		failErr(w, err)
		return
	}
	if !ok {
		fail(w, http.StatusNotFound, 40402, "no saved query %q", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// mayChange refuses to change what another user saved, unless the user is an admin (with --auth-file;
// without it everyone may do everything).
func mayChange(w http.ResponseWriter, r *http.Request, what, by string) bool {
	user := auth.Principal(r.Context())
	if by == "" || by == user || auth.HasRole(r.Context(), auth.Admin) {
		return true
	}
	fail(w, http.StatusForbidden, 40303, "%s was saved by %s: only %s or an admin may change or delete it (save a copy under a new name)", what, by, by)
	return false
}

func (c *Console) saveQuery(w http.ResponseWriter, r *http.Request) {
	var q Query
	if !readJSON(w, r, &q) {
		return
	}
	q.ID = r.PathValue("id")
	if q.ID != "" {
		old, ok, err := c.store.Query(q.ID)
		if err != nil {
			failErr(w, err)
			return
		}
		if ok && !mayChange(w, r, "query "+strconv.Quote(old.Name), old.By) {
			return
		}
	}
	q.By = auth.Principal(r.Context())
	q, err := c.store.SaveQuery(r.Context(), q)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

func (c *Console) deleteQuery(w http.ResponseWriter, r *http.Request) {
	if old, ok, err := c.store.Query(r.PathValue("id")); err == nil && ok && !mayChange(w, r, "query "+strconv.Quote(old.Name), old.By) {
		return
	}
	if err := c.store.DeleteQuery(r.Context(), r.PathValue("id")); err != nil {
		failErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) listDashboards(w http.ResponseWriter, r *http.Request) {
	ds, err := c.store.Dashboards()
	if err != nil {
		failErr(w, err)
		return
	}
	if ds == nil {
		ds = []Dashboard{}
	}
	writeJSON(w, http.StatusOK, ds)
}

func (c *Console) getDashboard(w http.ResponseWriter, r *http.Request) {
	d, ok, err := c.store.Dashboard(r.PathValue("id"))
	if err != nil {
		failErr(w, err)
		return
	}
	if !ok {
		fail(w, http.StatusNotFound, 40403, "no dashboard %q", r.PathValue("id"))
		return
	}
	// The tiles' queries come along, so a dashboard is drawn from one answer.
	qs := map[string]Query{}
	for _, it := range d.Items {
		if q, ok, err := c.store.Query(it.Query); err == nil && ok {
			qs[q.ID] = q
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dashboard": d, "queries": qs})
}

func (c *Console) saveDashboard(w http.ResponseWriter, r *http.Request) {
	var d Dashboard
	if !readJSON(w, r, &d) {
		return
	}
	d.ID = r.PathValue("id")
	if d.ID != "" {
		old, ok, err := c.store.Dashboard(d.ID)
		if err != nil {
			failErr(w, err)
			return
		}
		if ok && !mayChange(w, r, "dashboard "+strconv.Quote(old.Name), old.By) {
			return
		}
	}
	d.By = auth.Principal(r.Context())
	d, err := c.store.SaveDashboard(r.Context(), d)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (c *Console) deleteDashboard(w http.ResponseWriter, r *http.Request) {
	if old, ok, err := c.store.Dashboard(r.PathValue("id")); err == nil && ok && !mayChange(w, r, "dashboard "+strconv.Quote(old.Name), old.By) {
		return
	}
	if err := c.store.DeleteDashboard(r.Context(), r.PathValue("id")); err != nil {
		failErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- dead letters -----------------------------------------------------------------------------------

func (c *Console) deadLetterTopics(w http.ResponseWriter, r *http.Request) {
	snap, err := c.snaps.get(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	type row struct {
		Topic       string           `json:"topic"`
		DeadLetters string           `json:"dead_letters"`
		Rejected    int64            `json:"rejected"`
		Reasons     map[string]int64 `json:"reasons"`
	}
	out := []row{}
	for _, t := range snap.Topics {
		var n int64
		for _, v := range t.Rejected {
			n += v
		}
		reasons := t.Rejected
		if reasons == nil {
			reasons = map[string]int64{}
		}
		out = append(out, row{t.Name, t.DeadLetters, n, reasons})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) knownTopic(ctx context.Context, name string) bool {
	snap, err := c.snaps.get(ctx)
	if err != nil {
		return false
	}
	for _, t := range snap.Topics {
		if t.Name == name {
			return true
		}
	}
	return false
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if !c.knownTopic(r.Context(), topic) {
		fail(w, http.StatusNotFound, 40404, "%q is not a source topic of this pipeline", topic)
		return
	}
	n := sampleDefault
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > sampleMax {
			fail(w, http.StatusBadRequest, 40002, "n is 1 to %d", sampleMax)
			return
		}
		n = v
	}
	out, err := c.readDeadLetters(r.Context(), topic, n)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) redriveHandler(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if !c.knownTopic(r.Context(), topic) {
		fail(w, http.StatusNotFound, 40404, "%q is not a source topic of this pipeline", topic)
		return
	}
	var req struct {
		Records []Coord `json:"records"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Records) == 0 || len(req.Records) > sampleMax {
		fail(w, http.StatusBadRequest, 40003, "name 1 to %d records to re-drive", sampleMax)
		return
	}
	res, err := c.redrive(r.Context(), topic, req.Records, auth.Principal(r.Context()))
	if err != nil {
		failErr(w, err)
		return
	}
	c.log.Info("dead letters re-driven", "topic", topic, "asked", len(req.Records), "user", auth.Principal(r.Context()))
	writeJSON(w, http.StatusOK, map[string]any{"results": res})
}
