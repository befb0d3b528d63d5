package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/state"
)

// The console's shared state is event-sourced through one compacted topic (`_minipipe_console`), as the
// registry's is: every write is a record keyed by what it changes, the latest record of a key is its value,
// a tombstone deletes it. Every instance reads the topic into a goka view kept in Pebble and answers from it,
// so every instance shows the same saved queries and dashboards; a writer waits until its own view has
// applied its record, so a page reloaded right after saving finds what it saved.
const (
	prefixQuery     = "q/"
	prefixDashboard = "d/"
	prefixRedrive   = "r/" // a dead letter re-driven: its DLQ coordinates, so it is re-driven once
)

// Limits on what one saved object may hold: the topic is read whole by every instance at start.
const (
	maxNameBytes   = 200
	maxSQLBytes    = 64 << 10
	maxObjectBytes = 256 << 10
	maxItems       = 64
)

// Query is a saved query, with the chart drawn from its result.
type Query struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	SQL     string    `json:"sql"`
	Engine  string    `json:"engine,omitempty"` // duckdb or trino
	Chart   *Chart    `json:"chart,omitempty"`
	Updated time.Time `json:"updated"`
	By      string    `json:"by,omitempty"`
}

// Chart says how a result is drawn.
type Chart struct {
	Type   string   `json:"type"` // line, bar, area, scatter, pie, table
	X      string   `json:"x,omitempty"`
	Y      []string `json:"y,omitempty"`
	Series string   `json:"series,omitempty"` // a column whose values split Y into series
}

// Dashboard is a grid of saved queries, each shown as its chart or as a table.
type Dashboard struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Refresh int       `json:"refresh,omitempty"` // seconds between refreshes; 0: never
	Items   []Item    `json:"items"`
	Updated time.Time `json:"updated"`
	By      string    `json:"by,omitempty"`
}

// Item is one tile of a dashboard, placed on a 12-column grid.
type Item struct {
	Query string `json:"query"`
	X     int    `json:"x"`
	Y     int    `json:"y"`
	W     int    `json:"w"`
	H     int    `json:"h"`
}

var chartTypes = map[string]bool{"line": true, "bar": true, "area": true, "scatter": true, "pie": true, "table": true}

// InvalidError is a saved object the console refuses, with why.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalid(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

func checkName(n string) error {
	if strings.TrimSpace(n) == "" {
		return invalid("a name is required")
	}
	if len(n) > maxNameBytes || !utf8.ValidString(n) {
		return invalid("a name is valid UTF-8 of at most %d bytes", maxNameBytes)
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (q *Query) check() error {
	if err := checkName(q.Name); err != nil {
		return err
	}
	if strings.TrimSpace(q.SQL) == "" || len(q.SQL) > maxSQLBytes || !utf8.ValidString(q.SQL) {
		return invalid("a saved query holds SQL of at most %d bytes", maxSQLBytes)
	}
	if q.Engine != "" && q.Engine != "duckdb" && q.Engine != "trino" {
		return invalid("engine %q: duckdb or trino", q.Engine)
	}
	if c := q.Chart; c != nil {
		if !chartTypes[c.Type] {
			return invalid("chart type %q: line, bar, area, scatter, pie or table", c.Type)
		}
		if len(c.Y) > maxItems {
			return invalid("a chart draws at most %d columns", maxItems)
		}
	}
	return nil
}

func (d *Dashboard) check(s *Store, before *Dashboard) error {
	had := map[string]bool{} // tiles whose query was deleted since stay (shown as missing) when kept
	if before != nil {
		for _, it := range before.Items {
			had[it.Query] = true
		}
	}
	if err := checkName(d.Name); err != nil {
		return err
	}
	if d.Refresh != 0 && (d.Refresh < 5 || d.Refresh > 86400) {
		return invalid("refresh is 0 (never) or 5 to 86400 seconds")
	}
	if len(d.Items) > maxItems {
		return invalid("a dashboard holds at most %d tiles", maxItems)
	}
	for i, it := range d.Items {
		if !validID(it.Query) {
			return invalid("tile %d: query id %q is not valid", i+1, it.Query)
		}
		if _, ok, err := s.Query(it.Query); err != nil {
			return err
		} else if !ok && !had[it.Query] {
			return invalid("tile %d: no saved query %s", i+1, it.Query)
		}
		if it.X < 0 || it.X > 11 || it.W < 1 || it.X+it.W > 12 || it.Y < 0 || it.Y > 1000 || it.H < 1 || it.H > 12 {
			return invalid("tile %d: place it on the 12-column grid (x 0-11, w 1-12, x+w ≤ 12, h 1-12)", i+1)
		}
	}
	return nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Store is the console's shared state: the goka view of the console topic, kept in Pebble, and a producer
// that appends to it.
type Store struct {
	topic    string
	view     *goka.View
	producer sarama.SyncProducer
	client   sarama.Client
	log      *slog.Logger

	mu       sync.Mutex
	applied  int64
	offsetCh chan struct{}
	closed   bool
	sending  sync.WaitGroup // sends under way (Run waits for them before closing the producer)
}

var errStopped = errors.New("the console is stopping: try again in a moment")

// send produces a record unless the store has stopped.
func (s *Store) send(msg *sarama.ProducerMessage) (int32, int64, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, 0, errStopped
	}
	s.sending.Add(1)
	s.mu.Unlock()
	defer s.sending.Done()
	return s.producer.SendMessage(msg)
}

// NewStore creates the console topic if missing (compacted, one partition: one order of writes) and
// prepares the view; Run reads it.
func NewStore(topic string, kcfg kafka.Config, gk *kafka.Goka, log *slog.Logger) (*Store, error) {
	s := &Store{topic: topic, log: log, applied: -1, offsetCh: make(chan struct{})}
	tm, err := gk.TopicManager()
	if err != nil {
		return nil, fmt.Errorf("console: topic manager: %w", err)
	}
	defer tm.Close()
	if err := tm.EnsureTableExists(topic, 1); err != nil {
		return nil, fmt.Errorf("console: create %s: %w", topic, err)
	}
	opts := []goka.ViewOption{goka.WithViewCallback(s.update)}
	if b := gk.StorageBuilder(); b != nil {
		opts = append(opts, goka.WithViewStorageBuilder(state.Resuming(b, s.advance)))
	}
	if s.view, err = goka.NewView(kcfg.Brokers, goka.Table(topic), new(codec.Bytes), gk.ViewOptions(opts...)...); err != nil {
		return nil, fmt.Errorf("console: view: %w", err)
	}
	sc := kcfg.Sarama()
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	if s.client, err = sarama.NewClient(kcfg.Brokers, sc); err != nil {
		return nil, fmt.Errorf("console: kafka client: %w", err)
	}
	if s.producer, err = sarama.NewSyncProducerFromClient(s.client); err != nil {
		s.client.Close()
		return nil, fmt.Errorf("console: producer: %w", err)
	}
	return s, nil
}

// Run reads the console topic until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	err := s.view.Run(ctx)
	s.mu.Lock()
	s.closed = true // after this nothing is sent: the producer's channel is closed below
	s.mu.Unlock()
	s.sending.Wait()
	s.producer.Close()
	s.client.Close()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// Ready reports whether the view has caught up with the topic once.
func (s *Store) Ready() bool { return s.view.Recovered() }

func (s *Store) update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	var err error
	if value == nil {
		err = st.Delete(key)
	} else {
		err = st.Set(key, value)
	}
	if err != nil {
		return err
	}
	s.advance(ctx.Offset())
	return nil
}

func (s *Store) advance(offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if offset <= s.applied {
		return
	}
	s.applied = offset
	close(s.offsetCh)
	s.offsetCh = make(chan struct{})
}

// put appends key=value (nil: delete) and waits until this instance's view has applied it.
func (s *Store) put(ctx context.Context, key string, value []byte) error {
	msg := &sarama.ProducerMessage{Topic: s.topic, Partition: 0, Key: sarama.StringEncoder(key)}
	if value != nil {
		msg.Value = sarama.ByteEncoder(value)
	}
	_, offset, err := s.send(msg)
	if err != nil {
		return fmt.Errorf("saving to %s: %w", s.topic, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		s.mu.Lock()
		applied, ch := s.applied, s.offsetCh
		s.mu.Unlock()
		if applied >= offset {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("saved, but this instance has not read it back yet: %w", ctx.Err())
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Store) get(key string, into any) (bool, error) {
	v, err := s.view.Get(key)
	if err != nil {
		return false, err
	}
	b, _ := v.([]byte)
	if b == nil {
		return false, nil
	}
	return true, json.Unmarshal(b, into)
}

func list[T any](s *Store, prefix string) ([]T, error) {
	it, err := s.view.IteratorWithRange(prefix, prefix+"\xff")
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var out []T
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		b, _ := v.([]byte)
		var x T
		if b == nil || json.Unmarshal(b, &x) != nil {
			continue // a malformed record in the shared log is skipped, never fatal
		}
		out = append(out, x)
	}
	return out, nil
}

// Queries lists the saved queries by name.
func (s *Store) Queries() ([]Query, error) {
	qs, err := list[Query](s, prefixQuery)
	sort.Slice(qs, func(i, j int) bool { return strings.ToLower(qs[i].Name) < strings.ToLower(qs[j].Name) })
	return qs, err
}

// Query reads one saved query.
func (s *Store) Query(id string) (Query, bool, error) {
	var q Query
	ok, err := s.get(prefixQuery+id, &q)
	return q, ok, err
}

// SaveQuery stores q, giving it an id when it has none.
func (s *Store) SaveQuery(ctx context.Context, q Query) (Query, error) {
	if q.ID == "" {
		q.ID = newID()
	} else if !validID(q.ID) {
		return q, invalid("query id %q is not valid", q.ID)
	}
	if err := q.check(); err != nil {
		return q, err
	}
	q.Updated = time.Now().UTC()
	b, _ := json.Marshal(q)
	if len(b) > maxObjectBytes {
		return q, invalid("the query is larger than %d bytes", maxObjectBytes)
	}
	return q, s.put(ctx, prefixQuery+q.ID, b)
}

// DeleteQuery removes a saved query; dashboards showing it show the tile as missing.
func (s *Store) DeleteQuery(ctx context.Context, id string) error {
	if !validID(id) {
		return invalid("query id %q is not valid", id)
	}
	return s.put(ctx, prefixQuery+id, nil)
}

// Dashboards lists the dashboards by name.
func (s *Store) Dashboards() ([]Dashboard, error) {
	ds, err := list[Dashboard](s, prefixDashboard)
	sort.Slice(ds, func(i, j int) bool { return strings.ToLower(ds[i].Name) < strings.ToLower(ds[j].Name) })
	return ds, err
}

// Dashboard reads one dashboard.
func (s *Store) Dashboard(id string) (Dashboard, bool, error) {
	var d Dashboard
	ok, err := s.get(prefixDashboard+id, &d)
	return d, ok, err
}

// SaveDashboard stores d, giving it an id when it has none.
func (s *Store) SaveDashboard(ctx context.Context, d Dashboard) (Dashboard, error) {
	if d.ID == "" {
		d.ID = newID()
	} else if !validID(d.ID) {
		return d, invalid("dashboard id %q is not valid", d.ID)
	}
	if d.Items == nil {
		d.Items = []Item{}
	}
	var before *Dashboard
	if old, ok, err := s.Dashboard(d.ID); err != nil {
		return d, err
	} else if ok {
		before = &old
	}
	if err := d.check(s, before); err != nil {
		return d, err
	}
	d.Updated = time.Now().UTC()
	b, _ := json.Marshal(d)
	return d, s.put(ctx, prefixDashboard+d.ID, b)
}

// DeleteDashboard removes a dashboard.
func (s *Store) DeleteDashboard(ctx context.Context, id string) error {
	if !validID(id) {
		return invalid("dashboard id %q is not valid", id)
	}
	return s.put(ctx, prefixDashboard+id, nil)
}

// Redrive is the record that a dead letter was sent back to its source topic.
type Redrive struct {
	DLQ       string    `json:"dlq"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	To        string    `json:"to"`
	ToOffset  int64     `json:"to_offset"`
	At        time.Time `json:"at"`
	By        string    `json:"by,omitempty"`
}

func redriveKey(dlq string, p int32, off int64) string {
	return fmt.Sprintf("%s%s/%d/%d", prefixRedrive, dlq, p, off)
}

// Redriven reports whether a dead letter was already re-driven, and where to.
func (s *Store) Redriven(dlq string, p int32, off int64) (Redrive, bool, error) {
	var r Redrive
	ok, err := s.get(redriveKey(dlq, p, off), &r)
	return r, ok, err
}

func (s *Store) markRedriven(ctx context.Context, r Redrive) error {
	b, _ := json.Marshal(r)
	return s.put(ctx, redriveKey(r.DLQ, r.Partition, r.Offset), b)
}

var errNotFound = errors.New("not found")
