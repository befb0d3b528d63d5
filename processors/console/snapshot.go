package console

import (
	"context"
	"sync"
	"time"
)

// Snapshot is what the overview and the table pages show, read from shared state (the warehouse's
// manifests, the ingest processors' group tables, the consumer groups' offsets), so every instance shows
// the same; only Restarts is this instance's own.
type Snapshot struct {
	Taken    time.Time          `json:"taken"`
	Tables   []Table            `json:"tables"`
	Topics   []Topic            `json:"topics"`
	Restarts map[string]float64 `json:"restarts,omitempty"` // processor restarts in this instance, by processor
	Errors   []string           `json:"errors,omitempty"`   // what could not be read (the rest is shown)
	Took     time.Duration      `json:"took"`

	byTable map[string]int
}

// Table is a committed table.
type Table struct {
	Name             string      `json:"name"`
	Topic            string      `json:"topic,omitempty"`
	Generation       int         `json:"generation"`
	Location         string      `json:"location"`
	PartitionColumns []string    `json:"partition_columns,omitempty"`
	Files            int64       `json:"files"`
	Rows             int64       `json:"rows"`
	Bytes            int64       `json:"bytes"`
	SchemaIDs        []int       `json:"schema_ids"`
	LastCommit       time.Time   `json:"last_commit"`
	Partitions       []Partition `json:"partitions,omitempty"`
	RowsPerSec       float64     `json:"rows_per_sec"` // committed, since the snapshot before
}

// Partition is one table partition.
type Partition struct {
	Path       string    `json:"path"`
	Dir        string    `json:"dir,omitempty"` // its directory in the warehouse
	Files      int64     `json:"files"`
	Rows       int64     `json:"rows"`
	Bytes      int64     `json:"bytes"`
	SchemaIDs  []int     `json:"schema_ids,omitempty"`
	LastCommit time.Time `json:"last_commit"`
	Complete   *bool     `json:"complete,omitempty"` // nil: not known (read on the table's own page)
}

// Topic is a source topic as the ingest stage sees it.
type Topic struct {
	Name        string           `json:"name"`
	Table       string           `json:"table"`
	Accepted    int64            `json:"accepted"`
	Rejected    map[string]int64 `json:"rejected,omitempty"` // dead letters by reason
	Repeats     int64            `json:"repeats,omitempty"`
	Late        int64            `json:"late,omitempty"`
	Partitions  []TopicPartition `json:"partitions"`
	DeadLetters string           `json:"dead_letters"` // the dead-letter topic
	InPerSec    float64          `json:"in_per_sec"`   // accepted, since the snapshot before
}

// TopicPartition is one partition of a source topic: its end offset and how far the ingest group is.
type TopicPartition struct {
	Partition int32 `json:"partition"`
	End       int64 `json:"end"`
	Committed int64 `json:"committed"` // -1: the group has not committed yet
	Lag       int64 `json:"lag"`
}

// Source reads a snapshot.
type Source func(ctx context.Context) (*Snapshot, error)

func (s *Snapshot) index() {
	s.byTable = make(map[string]int, len(s.Tables))
	for i, t := range s.Tables {
		s.byTable[t.Name] = i
	}
}

// table finds a table by name.
func (s *Snapshot) table(name string) (*Table, bool) {
	i, ok := s.byTable[name]
	if !ok {
		return nil, false
	}
	return &s.Tables[i], true
}

// rates fills the per-second figures from the snapshot before.
func (s *Snapshot) rates(prev *Snapshot) {
	if prev == nil {
		return
	}
	dt := s.Taken.Sub(prev.Taken).Seconds()
	if dt <= 0 {
		return
	}
	for i := range s.Tables {
		if p, ok := prev.table(s.Tables[i].Name); ok && p.Generation == s.Tables[i].Generation && s.Tables[i].Rows >= p.Rows {
			s.Tables[i].RowsPerSec = float64(s.Tables[i].Rows-p.Rows) / dt
		}
	}
	before := map[string]int64{}
	for _, t := range prev.Topics {
		before[t.Name] = t.Accepted
	}
	for i := range s.Topics {
		if b, ok := before[s.Topics[i].Name]; ok && s.Topics[i].Accepted >= b {
			s.Topics[i].InPerSec = float64(s.Topics[i].Accepted-b) / dt
		}
	}
}

// snapshots keeps the latest snapshot, refreshed in the background every interval while pages are being
// looked at (and once at start, so the first page is served from memory too).
type snapshots struct {
	src      Source
	interval time.Duration

	mu      sync.Mutex
	cur     *Snapshot
	asked   time.Time
	ready   chan struct{} // closed when the first snapshot is in
	lastErr error

	refreshing sync.Mutex // one read at a time
}

// firstWait is how long a page waits for the first reading.
const firstWait = 5 * time.Second

func newSnapshots(src Source, interval time.Duration) *snapshots {
	return &snapshots{src: src, interval: interval, ready: make(chan struct{})}
}

func (s *snapshots) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	first := true
	for {
		s.mu.Lock()
		idle := !first && time.Since(s.asked) > 2*time.Minute
		s.mu.Unlock()
		if !idle {
			s.refresh(ctx)
		}
		if first {
			close(s.ready)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *snapshots) refresh(ctx context.Context) {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	snap, err := s.src(rctx)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err != nil {
		return
	}
	snap.Taken = start
	snap.Took = time.Since(start)
	snap.index()
	snap.rates(s.cur)
	s.cur = snap
}

// get returns the latest snapshot, waiting for the first one at most until ctx ends. After a while without
// pages (no background reads), the first page waits for a fresh one.
func (s *snapshots) get(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	prev := s.asked
	s.asked = time.Now()
	s.mu.Unlock()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(firstWait):
		// The first reading is slow (a large warehouse, a slow broker): pages show that, and fill in later.
		return &Snapshot{Taken: time.Now(), Tables: []Table{}, Topics: []Topic{}, Errors: []string{"still reading the warehouse's manifests and the pipeline's state for the first time"}}, nil
	}
	s.mu.Lock()
	// No page asked for a while (the background reads may have paused) and the last read is older than
	// the interval: read now.
	stale := s.cur != nil && time.Since(prev) > s.interval && time.Since(s.cur.Taken) > s.interval+s.cur.Took
	s.mu.Unlock()
	if stale {
		s.refresh(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		if s.lastErr != nil {
			return nil, s.lastErr
		}
		return &Snapshot{}, nil
	}
	return s.cur, nil
}
