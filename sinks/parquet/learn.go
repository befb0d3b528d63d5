package parquet

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// Encodings chooses, per table and column, between dictionary and plain encoding from what the table's
// files showed. A column of ids, timestamps, free text or measurements has about as many distinct values as
// rows: a dictionary only adds indexes to the values, and arrow-go, which tries one on every column, hashes
// each value into it until the dictionary page passes its limit, then starts over plain (since v18.6 it
// drops a dictionary that overflowed before its first page; before, it wrote it beside the plain pages).
// With files of a few seconds that was a fifth of a wide drain's CPU.
//
// A column the table has not seen yet is judged on the file's first batch (Writer): dictionary unless its
// values repeat too little to pay for one (dictionaryPays). A finished file then teaches the columns it
// wrote with a dictionary: kept when it paid, written plain for the next 8 files when it fell back or did
// not pay (parquet-mr makes the same check after a column's first page). After those, one file tries the
// dictionary again (the others stay plain meanwhile); each failed try doubles the wait, up to 256 files.
// Safe for concurrent use; use NewEncodings.
type Encodings struct {
	mu     sync.Mutex
	tables map[string]map[string]*colState // table → column path → state
	now    func() time.Time
}

// colState is what a table's files taught about one column.
type colState struct {
	dict    bool      // the dictionary paid in the last file that tried it
	left    int       // plain: files left before a file tries the dictionary again
	streak  int       // plain: tries in a row that did not pay
	probing time.Time // plain: since when a file tries the dictionary (zero: none)
}

const (
	// minLearnRows: files and batches with fewer rows teach nothing.
	minLearnRows    = 1024
	firstPlainFiles = 8
	maxPlainFiles   = 256
	// probeTimeout lets another file try a dictionary when the file trying it has not finished for this long
	// (a file that ends, fails or is aborted says so at once: learn).
	probeTimeout = time.Hour
)

// choice is how a file writes a column.
type choice uint8

const (
	chooseSample choice = iota // unknown: judged on the file's first batch
	chooseDict                 // with a dictionary (learned, or judged so on the first batch)
	choosePlain                // plain (learned, or judged so on the first batch)
	chooseProbe                // with a dictionary, trying it again after files written plain
)

// NewEncodings returns an empty memory of column encodings.
func NewEncodings() *Encodings {
	return &Encodings{tables: map[string]map[string]*colState{}, now: time.Now}
}

// plan returns how the next file of table, of the given leaf column paths, writes the columns the table
// knows, counting the file; columns missing from the plan are to be sampled.
func (e *Encodings) plan(table string, paths []string) map[string]choice {
	e.mu.Lock()
	defer e.mu.Unlock()
	cols := e.tables[table]
	if len(cols) == 0 {
		return nil
	}
	now := e.now()
	out := make(map[string]choice, len(paths))
	for _, path := range paths {
		c := cols[path]
		switch {
		case c == nil:
		case c.dict:
			out[path] = chooseDict
		case c.left > 0:
			c.left--
			out[path] = choosePlain
		case c.probing.IsZero() || now.Sub(c.probing) > probeTimeout:
			c.probing = now
			out[path] = chooseProbe
		default:
			out[path] = choosePlain // another file is trying the dictionary
		}
	}
	return out
}

// learn reads a finished file's column chunks. written says how the file wrote each column it decided on
// (sampled columns included); the columns it wrote plain because the table said so teach nothing. plainSize
// estimates a column chunk's plain size from it and its type length (0: unknown; for strings and binaries
// the whole file's). A file without a footer (md nil: failed or aborted) or with too few rows to tell only
// ends its tries of a dictionary.
func (e *Encodings) learn(table string, md *metadata.FileMetaData, written map[string]choice, sampledPlain map[string]bool, plainSize func(cc *metadata.ColumnChunkMetaData, typeLength int) int64) {
	if md == nil || md.NumRows < minLearnRows {
		e.release(table, written)
		return
	}
	type sums struct {
		fell        bool
		dict, plain int64
	}
	cols := map[string]*sums{}
	for i := 0; i < md.NumRowGroups(); i++ {
		rg := md.RowGroup(i)
		for j := 0; j < rg.NumColumns(); j++ {
			cc, err := rg.ColumnChunk(j)
			if err != nil {
				e.release(table, written)
				return
			}
			path := cc.PathInSchema().String()
			if written[path] == choosePlain {
				continue
			}
			// A chunk asked for a dictionary that has none: arrow-go dropped a dictionary that overflowed
			// before its first page and wrote the values plain (a fallback), unless the chunk has no value.
			noDict := !cc.HasDictionaryPage()
			if noDict && !hasValues(cc) {
				continue
			}
			c := cols[path]
			if c == nil {
				c = &sums{}
				cols[path] = c
			}
			c.fell = c.fell || noDict || fellBack(cc)
			c.dict += cc.TotalUncompressedSize()
			if cc.Type() != parquet.Types.ByteArray || i == 0 { // a string column's plain size is the file's
				c.plain += plainSize(cc, md.Schema.Column(j).TypeLength())
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// A probe whose column got no dictionary chunk (all null) teaches nothing; the others are taught below.
	defer e.releaseLocked(table, written)
	state := e.tables[table]
	if state == nil {
		state = map[string]*colState{}
		e.tables[table] = state
	}
	get := func(path string) *colState {
		c := state[path]
		if c == nil {
			c = &colState{}
			state[path] = c
		}
		return c
	}
	plain := func(c *colState) {
		if !c.dict && c.left > 0 {
			return // another file already taught it (files of a table close concurrently)
		}
		c.dict = false
		c.left = min(firstPlainFiles<<min(c.streak, 8), maxPlainFiles)
		c.streak++
		c.probing = time.Time{}
	}
	for path := range sampledPlain {
		plain(get(path))
	}
	for path, s := range cols {
		c := get(path)
		if s.fell || (s.plain > 0 && s.dict*5 >= s.plain*4) {
			plain(c)
		} else {
			*c = colState{dict: true}
		}
	}
}

// release ends the tries of a dictionary a file made (chooseProbe), so that the next file may try.
func (e *Encodings) release(table string, written map[string]choice) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseLocked(table, written)
}

func (e *Encodings) releaseLocked(table string, written map[string]choice) {
	for path, c := range written {
		if c != chooseProbe {
			continue
		}
		if s := e.tables[table][path]; s != nil && !s.dict {
			s.probing = time.Time{}
		}
	}
}

// hasValues says whether a column chunk holds a value that is not null (true when its statistics cannot
// tell).
func hasValues(cc *metadata.ColumnChunkMetaData) bool {
	if cc.NumValues() == 0 {
		return false
	}
	st, err := cc.Statistics()
	if err != nil || st == nil || !st.HasNullCount() {
		return true
	}
	return st.NullCount() < cc.NumValues()
}

// fellBack says whether a dictionary-encoded column chunk has data pages written plain: its dictionary
// overflowed.
func fellBack(cc *metadata.ColumnChunkMetaData) bool {
	for _, s := range cc.EncodingStats() {
		if s.PageType.String() != "DICTIONARY_PAGE" && s.Encoding == parquet.Encodings.Plain {
			return true
		}
	}
	return false
}

// dictionaryPays says whether a dictionary would pay for a column whose batch holds n values (not null) of
// which distinct are distinct, width bytes each on average plain: the dictionary's values plus an index per
// value must stay under 4/5 of the values written plain. Batches too small to tell keep the dictionary.
func dictionaryPays(n, distinct int, width float64) bool {
	if n < minLearnRows {
		return true
	}
	idxBits := bits.Len(uint(max(distinct-1, 1)))
	dict := float64(distinct)*width + float64(n)*float64(idxBits)/8
	return dict < 0.8*float64(n)*width
}

// sampleDistinct counts the distinct values of a top-level column of a batch and their average plain
// width; ok is false for types not sampled (booleans, nested, dictionary-less types: they keep the default).
func sampleDistinct(col arrow.Array) (n, distinct int, width float64, ok bool) {
	switch a := col.(type) {
	case *array.Int32:
		n, d := countFixed(a.Int32Values(), a)
		return n, d, 4, true
	case *array.Date32:
		n, d := countFixed(a.Date32Values(), a)
		return n, d, 4, true
	case *array.Time32:
		n, d := countFixed(a.Time32Values(), a)
		return n, d, 4, true
	case *array.Int64:
		n, d := countFixed(a.Int64Values(), a)
		return n, d, 8, true
	case *array.Time64:
		n, d := countFixed(a.Time64Values(), a)
		return n, d, 8, true
	case *array.Timestamp:
		n, d := countFixed(a.TimestampValues(), a)
		return n, d, 8, true
	case *array.Float32:
		n, d := countBits(a.Float32Values(), a, func(v float32) uint64 { return uint64(math.Float32bits(v)) })
		return n, d, 4, true
	case *array.Float64:
		n, d := countBits(a.Float64Values(), a, math.Float64bits)
		return n, d, 8, true
	case *array.String:
		n, d, size := countStrings(a.Len(), a.IsNull, a.Value)
		return n, d, 4 + float64(size)/float64(max(n, 1)), true
	case *array.Binary:
		n, d, size := countStrings(a.Len(), a.IsNull, func(i int) string { return string(a.Value(i)) })
		return n, d, 4 + float64(size)/float64(max(n, 1)), true
	}
	return 0, 0, 0, false
}

func countFixed[T comparable](vals []T, a arrow.Array) (n, distinct int) {
	return countBits(vals, a, func(v T) T { return v })
}

// countBits counts the values present and their distinct keys (floats by their bits: NaN is one value).
func countBits[T any, K comparable](vals []T, a arrow.Array, key func(T) K) (n, distinct int) {
	seen := make(map[K]struct{}, len(vals))
	for i, v := range vals {
		if a.IsNull(i) {
			continue
		}
		n++
		seen[key(v)] = struct{}{}
	}
	return n, len(seen)
}

func countStrings(length int, isNull func(int) bool, value func(int) string) (n, distinct, size int) {
	seen := make(map[string]struct{}, length)
	for i := 0; i < length; i++ {
		if isNull(i) {
			continue
		}
		v := value(i)
		n++
		size += len(v)
		seen[v] = struct{}{}
	}
	return n, len(seen), size
}
