package validate

import (
	"encoding/json"
	"sort"

	"github.com/minipipe/minipipe/state"
)

// StatsKey is the key of a source partition's validation stats in the ingest processor's group table.
const StatsKey = "v/"

// Stats is what the validation stage keeps of one source partition: the schema ids it has seen, where and
// when, and how many records it accepted and rejected, by reason. It counts each offset once: a record at
// or below Through was counted before (a redo after a crash or a rebalance skips it).
type Stats struct {
	Through    int64                `json:"through"` // the last offset counted (-1: none)
	Accepted   int64                `json:"accepted"`
	Rejected   map[string]int64     `json:"rejected,omitempty"` // by reason code (dead letters)
	Repeats    int64                `json:"repeats,omitempty"`  // dropped as retries of an Idempotency-Key
	Tombstones int64                `json:"tombstones,omitempty"`
	Schemas    map[int]*SchemaUsage `json:"schemas,omitempty"` // by schema id, accepted records only
}

// SchemaUsage is where and when a schema id was seen.
type SchemaUsage struct {
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	FirstTime   int64 `json:"first_time"` // record timestamps, Unix ms
	LastTime    int64 `json:"last_time"`
	Records     int64 `json:"records"`
}

// NewStats is the stats of a partition nothing was counted in.
func NewStats() Stats { return Stats{Through: -1} }

// DecodeStats reads stats stored by Encode (nil: none yet).
func DecodeStats(b []byte) (Stats, error) { return state.DecodeJSON(b, NewStats(), "validation stats") }

// Encode is the stored form.
func (s *Stats) Encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// Counts reports whether the record at offset is new to the stats (and moves Through past it).
func (s *Stats) Counts(offset int64) bool {
	if offset <= s.Through {
		return false
	}
	s.Through = offset
	return true
}

// Accept counts an accepted record of schema id (call Counts first).
func (s *Stats) Accept(offset, ts int64, id int) {
	s.Accepted++
	if s.Schemas == nil {
		s.Schemas = map[int]*SchemaUsage{}
	}
	u := s.Schemas[id]
	if u == nil {
		u = &SchemaUsage{FirstOffset: offset, FirstTime: ts}
		s.Schemas[id] = u
	}
	u.LastOffset, u.LastTime = offset, ts
	u.Records++
}

// Reject counts a rejected record by its reason code.
func (s *Stats) Reject(code string) {
	if s.Rejected == nil {
		s.Rejected = map[string]int64{}
	}
	s.Rejected[code]++
}

// TopicStats is one topic's stats over its partitions.
type TopicStats struct {
	Topic      string
	Partitions map[int32]Stats
}

// Total sums the partitions: counts add up; for each schema id, the earliest and latest times and the
// number of partitions that saw it.
func (t TopicStats) Total() (accepted, repeats, tombstones int64, rejected map[string]int64, schemas []SchemaSummary) {
	rejected = map[string]int64{}
	by := map[int]*SchemaSummary{}
	for _, s := range t.Partitions {
		accepted += s.Accepted
		repeats += s.Repeats
		tombstones += s.Tombstones
		for code, n := range s.Rejected {
			rejected[code] += n
		}
		for id, u := range s.Schemas {
			sum := by[id]
			if sum == nil {
				sum = &SchemaSummary{ID: id, FirstTime: u.FirstTime, LastTime: u.LastTime}
				by[id] = sum
			}
			sum.Records += u.Records
			sum.Partitions++
			sum.FirstTime = min(sum.FirstTime, u.FirstTime)
			sum.LastTime = max(sum.LastTime, u.LastTime)
		}
	}
	for _, s := range by {
		schemas = append(schemas, *s)
	}
	sort.Slice(schemas, func(i, j int) bool { return schemas[i].ID < schemas[j].ID })
	return
}

// SchemaSummary is a schema id's use across a topic's partitions.
type SchemaSummary struct {
	ID         int
	Records    int64
	Partitions int
	FirstTime  int64
	LastTime   int64
}
