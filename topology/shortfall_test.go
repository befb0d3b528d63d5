package topology_test

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
)

// explainShortfall runs when a table lacks rows of its topic, before the test fails. It waits up to a minute
// more to tell late rows from lost ones, then names the ids still missing (the load generators number
// records 1…n and every test schema has the id as its first field), where they sit in the topic, and, when
// the table was counted through a query engine, what the warehouse's own manifests hold. ask queries the
// engine that counted; warehouse is the pipeline's warehouse ("" when ask already reads it).
func explainShortfall(t *testing.T, brokers []string, topic, table string, want int, ask func(sql string) ([][]string, error), warehouse, whTable string) {
	t.Helper()
	count := func() int {
		rows, err := ask("SELECT count(*) FROM " + table)
		if err != nil || len(rows) != 1 {
			return -1
		}
		var n int
		fmt.Sscan(rows[0][0], &n)
		return n
	}
	start := time.Now()
	for time.Since(start) < time.Minute {
		if n := count(); n >= want {
			t.Logf("shortfall: the missing rows arrived %s after the deadline", time.Since(start).Round(time.Second))
			return
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("shortfall: after another minute the table holds %d of %d rows", count(), want)
	if warehouse != "" {
		if n, d, err := testkit.CountDistinct(t, warehouse, whTable, "id"); err == nil {
			t.Logf("shortfall: the warehouse's manifests hold %d rows (%d distinct ids)", n, d)
		} else {
			t.Logf("shortfall: reading the warehouse's manifests: %v", err)
		}
	}

	// The ids the table lacks: its gaps, and what lies below its least id and above its greatest.
	var missing [][2]int64
	rows, err := ask("SELECT min(id), max(id) FROM " + table)
	if err != nil || len(rows) != 1 {
		t.Logf("shortfall: min/max id: %v %v", rows, err)
		return
	}
	var lo, hi int64
	fmt.Sscan(rows[0][0], &lo)
	fmt.Sscan(rows[0][1], &hi)
	if lo > 1 {
		missing = append(missing, [2]int64{1, lo - 1})
	}
	gaps, err := ask("SELECT id + 1, next - 1 FROM (SELECT id, lead(id) OVER (ORDER BY id) AS next FROM " + table +
		") WHERE next > id + 1 ORDER BY 1 LIMIT 1000")
	if err != nil {
		t.Logf("shortfall: gaps: %v", err)
		return
	}
	for _, g := range gaps {
		var a, b int64
		fmt.Sscan(g[0], &a)
		fmt.Sscan(g[1], &b)
		missing = append(missing, [2]int64{a, b})
	}
	if hi < int64(want) {
		missing = append(missing, [2]int64{hi + 1, int64(want)})
	}
	isMissing := func(id int64) bool {
		i := sort.Search(len(missing), func(i int) bool { return missing[i][1] >= id })
		return i < len(missing) && missing[i][0] <= id
	}

	// Where the missing records sit: partition and offsets.
	type spot struct {
		partition int32
		offset    int64
		id        int64
	}
	var spots []spot
	for _, m := range testkit.Consume(t, brokers, topic, want, 2*time.Minute) {
		if len(m.Value) < 6 {
			continue
		}
		if id, n := binary.Varint(m.Value[5:]); n > 0 && isMissing(id) {
			spots = append(spots, spot{m.Partition, m.Offset, id})
		}
	}
	sort.Slice(spots, func(i, j int) bool {
		if spots[i].partition != spots[j].partition {
			return spots[i].partition < spots[j].partition
		}
		return spots[i].offset < spots[j].offset
	})
	var b strings.Builder
	for i := 0; i < len(spots); {
		j := i
		for j+1 < len(spots) && spots[j+1].partition == spots[i].partition {
			j++
		}
		fmt.Fprintf(&b, "\n  partition %d: %d missing between offsets %d and %d", spots[i].partition, j-i+1, spots[i].offset, spots[j].offset)
		i = j + 1
	}
	for i, n := 0, 0; i < len(spots) && n < 30; n++ {
		j := i
		for j+1 < len(spots) && spots[j+1].partition == spots[i].partition && spots[j+1].offset == spots[j].offset+1 {
			j++
		}
		fmt.Fprintf(&b, "\n  partition %d offsets %d–%d (ids %d…)", spots[i].partition, spots[i].offset, spots[j].offset, spots[i].id)
		i = j + 1
	}
	t.Logf("shortfall: %d records missing (%d id ranges, the first 1000 gaps looked at); in the topic at:%s", len(spots), len(missing), b.String())
}
