// Command minipipe-bench measures a running minipipe: REST produce throughput (records/s at 1 and 100
// records per request, closed loop) and latency percentiles at fixed request rates (open loop: latency is
// measured from when a request was due, so a slow server cannot hide its queueing). It prints the machine
// it ran on and a markdown table.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ExitOnError) }

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "load" || os.Args[1] == "drain" || os.Args[1] == "rawread") {
		pipelineMain(os.Args[1:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "machine" {
		fmt.Println(machine(strings.Join(os.Args[2:], " ")))
		return
	}
	rest := flag.String("rest", "http://127.0.0.1:8082", "REST Proxy base URL")
	topic := flag.String("topic", fmt.Sprintf("bench-%d", time.Now().Unix()), "topic to produce to")
	duration := flag.Duration("duration", 15*time.Second, "length of each scenario")
	warmup := flag.Duration("warmup", 8*time.Second, "warm-up before each measured scenario")
	scenarios := flag.String("scenarios", "tput100,tput1,lat100,lat1", "scenarios to run")
	rate100 := flag.Int("rate100", 500, "requests/s of the latency scenario at 100 records per request")
	rate1 := flag.Int("rate1", 2500, "requests/s of the latency scenario at 1 record per request")
	kafkaVersion := flag.String("kafka-version", "", "Kafka version, for the report")
	flag.Parse()

	b := &bench{rest: strings.TrimRight(*rest, "/"), topic: *topic, client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute, DisableCompression: true,
	}, Timeout: 30 * time.Second}}
	if err := b.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	fmt.Println(machine(*kafkaVersion))
	fmt.Println()
	fmt.Println("| scenario | records/request | clients / target rate | requests/s | records/s | MB/s (JSON in) | p50 | p99 | p99.9 | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range strings.Split(*scenarios, ",") {
		var r result
		switch s {
		case "tput100":
			b.closed(100, 16, *warmup)
			r = b.closed(100, 16, *duration)
		case "tput1":
			b.closed(1, 32, *warmup)
			r = b.closed(1, 32, *duration)
		case "lat100":
			b.open(100, *rate100, *warmup)
			r = b.open(100, *rate100, *duration)
		case "lat1":
			b.open(1, *rate1, *warmup)
			r = b.open(1, *rate1, *duration)
		default:
			fmt.Fprintln(os.Stderr, "unknown scenario", s)
			os.Exit(2)
		}
		fmt.Println(r.row(s))
	}
}

type bench struct {
	rest     string
	topic    string
	client   *http.Client
	schemaID int
	bodies   map[int][]byte
}

const schema = `{"type":"record","name":"Event","namespace":"bench","fields":[{"name":"id","type":"long"},{"name":"user","type":"string"},{"name":"action","type":"string"},{"name":"amount","type":["null","double"],"default":null}]}`

// setup registers the schema through a first produce and prepares request bodies. Like the seed's curl,
// every request sends the schema text again (value_schema), not the id the first answer returned: the edge
// must recognise the text it has seen without parsing or registering it again.
func (b *bench) setup() error {
	first, _ := json.Marshal(map[string]any{"value_schema": schema, "records": []any{record(0)}})
	resp, err := b.post(first)
	if err != nil {
		return err
	}
	var out struct {
		ValueSchemaID int `json:"value_schema_id"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.ValueSchemaID == 0 {
		return fmt.Errorf("first produce: %s", resp)
	}
	b.schemaID = out.ValueSchemaID
	b.bodies = map[int][]byte{}
	for _, n := range []int{1, 100} {
		recs := make([]any, n)
		for i := range recs {
			recs[i] = record(i)
		}
		b.bodies[n], _ = json.Marshal(map[string]any{"value_schema": schema, "records": recs})
	}
	return nil
}

func record(i int) map[string]any {
	amount := any(nil)
	if i%2 == 0 {
		amount = map[string]any{"double": float64(i) * 1.25}
	}
	return map[string]any{"value": map[string]any{"id": i, "user": fmt.Sprintf("user-%04d", i%1000), "action": []string{"view", "click", "buy"}[i%3], "amount": amount}}
}

func (b *bench) post(body []byte) ([]byte, error) {
	req, _ := http.NewRequest("POST", b.rest+"/topics/"+b.topic, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.kafka.avro.v2+json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return out, fmt.Errorf("status %d: %s", resp.StatusCode, out)
	}
	return out, err
}

type result struct {
	perReq   int
	load     string
	requests int64
	errors   int64
	elapsed  time.Duration
	lat      []time.Duration
	bytes    int64
}

func (r result) row(name string) string {
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	pct := func(p float64) string {
		if len(r.lat) == 0 {
			return "-"
		}
		i := int(p * float64(len(r.lat)-1))
		return fmt.Sprintf("%.2f ms", float64(r.lat[i].Microseconds())/1000)
	}
	secs := r.elapsed.Seconds()
	return fmt.Sprintf("| %s | %d | %s | %.0f | %.0f | %.1f | %s | %s | %s | %d |", name, r.perReq, r.load,
		float64(r.requests)/secs, float64(r.requests)*float64(r.perReq)/secs, float64(r.bytes)/secs/1e6,
		pct(0.5), pct(0.99), pct(0.999), r.errors)
}

// closed runs `clients` clients back to back for d.
func (b *bench) closed(perReq, clients int, d time.Duration) result {
	body := b.bodies[perReq]
	var mu sync.Mutex
	res := result{perReq: perReq, load: fmt.Sprintf("%d clients", clients)}
	var reqs, errs atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for time.Now().Before(stop) {
				t0 := time.Now()
				if _, err := b.post(body); err != nil {
					errs.Add(1)
					continue
				}
				lat = append(lat, time.Since(t0))
				reqs.Add(1)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests, res.errors = reqs.Load(), errs.Load()
	res.bytes = res.requests * int64(len(body))
	return res
}

// open sends requests at a fixed rate for d, whatever the server does, and measures each latency from the
// moment its request was due.
func (b *bench) open(perReq, rate int, d time.Duration) result {
	body := b.bodies[perReq]
	res := result{perReq: perReq, load: fmt.Sprintf("%d req/s", rate)}
	n := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	sem := make(chan struct{}, 2048)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := b.post(body); err == nil {
				lat[i], ok[i] = time.Since(due), true
			}
		}(i, due)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	for i := range lat {
		if ok[i] {
			res.lat = append(res.lat, lat[i])
			res.requests++
		} else {
			res.errors++
		}
	}
	res.bytes = res.requests * int64(len(body))
	return res
}

func machine(kafkaVersion string) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("machine: %s, %d cores, %s RAM, Linux %s, %s; Kafka %s on the same machine; %s",
		model, runtime.NumCPU(), mem, kernel, runtime.Version(), kafkaVersion, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}
