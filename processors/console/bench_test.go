package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/testkit/browser"
)

// bigSnapshot is a warehouse of tables×partitions with their topics.
func bigSnapshot(tables, partitions int) *Snapshot {
	s := &Snapshot{Taken: time.Now(), Restarts: map[string]float64{}}
	for i := range tables {
		name := fmt.Sprintf("table_%04d", i)
		t := Table{Name: name, Topic: name, Generation: 1, Location: name, PartitionColumns: []string{"dt"}, SchemaIDs: []int{},
			LastCommit: time.Now().Add(-time.Duration(i) * time.Second)}
		for p := range partitions {
			part := Partition{Path: fmt.Sprintf("dt=%s", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, p).Format("2006-01-02")),
				Files: 3, Rows: 30000, Bytes: 3 << 20, SchemaIDs: []int{1}, LastCommit: t.LastCommit}
			t.Partitions = append(t.Partitions, part)
			t.Files += part.Files
			t.Rows += part.Rows
			t.Bytes += part.Bytes
		}
		s.Tables = append(s.Tables, t)
		tp := Topic{Name: name, Table: name, Accepted: t.Rows, Rejected: map[string]int64{"corrupt-datum": 3}, DeadLetters: name + ".dlq"}
		for p := range 4 {
			tp.Partitions = append(tp.Partitions, TopicPartition{Partition: int32(p), End: 1000, Committed: 990, Lag: 10})
		}
		s.Topics = append(s.Topics, tp)
	}
	return s
}

func benchConsole(b *testing.B, snap *Snapshot) *httptest_ {
	b.Helper()
	brokers := embedded(b)
	h := newHarnessWith(b, brokers, "_console_bench", Deps{
		Snapshot: func(context.Context) (*Snapshot, error) {
			c := *snap
			return &c, nil
		},
		Views: func(tables []Table) ([]query.View, []string, error) {
			views := make([]query.View, len(tables))
			for i, t := range tables {
				views[i] = query.View{Name: t.Name, PartitionFields: t.PartitionColumns}
			}
			return views, []string{os.TempDir()}, nil
		},
	})
	return &httptest_{url: h.srv.URL}
}

type httptest_ struct{ url string }

// BenchmarkConsoleAPI: the JSON behind each page with 1,000 tables of 100 partitions, and the SQL page's
// own time on top of DuckDB's.
func BenchmarkConsoleAPI(b *testing.B) {
	srv := benchConsole(b, bigSnapshot(1000, 100))
	get := func(b *testing.B, path string) int {
		resp, err := http.Get(srv.url + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return int(n)
	}
	for _, path := range []string{"/console/api/overview", "/console/api/tables", "/console/api/tables/table_0500", "/console/api/completions", "/console/api/deadletters"} {
		b.Run(strings.TrimPrefix(path, "/console/api/"), func(b *testing.B) {
			n := 0
			for b.Loop() {
				n = get(b, path)
			}
			b.ReportMetric(float64(n), "bytes/page")
		})
	}
	b.Run("sql-overhead", func(b *testing.B) {
		var engine, total time.Duration
		for b.Loop() {
			start := time.Now()
			resp, err := http.Post(srv.url+"/console/api/sql", "application/json", strings.NewReader(`{"sql":"SELECT i, i * 2 AS twice, 'row ' || i AS label FROM range(1000) t(i)"}`))
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				TookMS float64 `json:"took_ms"`
			}
			_ = jsonDecode(resp.Body, &out)
			resp.Body.Close()
			total += time.Since(start)
			engine += time.Duration(out.TookMS * float64(time.Millisecond))
		}
		b.ReportMetric(float64((total-engine).Microseconds())/float64(b.N)/1000, "overhead-ms")
		b.ReportMetric(float64(engine.Microseconds())/float64(b.N)/1000, "duckdb-ms")
	})
}

// BenchmarkConsoleRender: each page's first render in headless Chromium (navigation start to the page's
// data drawn), with 1,000 tables of 100 partitions.
func BenchmarkConsoleRender(b *testing.B) {
	srv := benchConsole(b, bigSnapshot(1000, 100))
	ctx := browser.Browser(b, 10*time.Minute)
	for _, page := range []string{"#/", "#/tables", "#/tables/table_0500", "#/registry", "#/deadletters", "#/sql", "#/dashboards"} {
		if page == "#/registry" {
			continue // served by the registry, which this harness has not
		}
		b.Run(strings.Trim(strings.ReplaceAll(page, "/", "-"), "#-"), func(b *testing.B) {
			var total float64
			for b.Loop() {
				if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(srv.url+"/console/"+page)); err != nil {
					b.Fatal(err)
				}
				var ms float64
				var err error
				for range 5 { // the poll may start in the page being replaced ("cannot find context")
					ms, err = chromedp.Run(ctx, chromedp.Poll[float64](`document.getElementById('main') && document.getElementById('main').dataset.ready === '1' && performance.now()`,
						chromedp.WithPollingInterval(time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
					if err == nil || !strings.Contains(err.Error(), "context") {
						break
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				total += ms
			}
			b.ReportMetric(total/float64(b.N), "render-ms")
		})
	}
}
