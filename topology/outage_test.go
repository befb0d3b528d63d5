package topology_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

const registryCT = "application/vnd.schemaregistry.v1+json"

// TestRegistryLeaderMoves: three instances take registrations at once while each in turn is killed
// (SIGKILL) and restarted, so that the owner of registry writes moves several times. Every id names
// exactly one schema, one schema has one id, and every instance answers the same.
func TestRegistryLeaderMoves(t *testing.T) {
	brokers := testkit.Kafka(t)
	base := testkit.TestConfig(t, brokers)
	base.RegistryTimeout = 10 * time.Second
	base.Warehouse = base.WarehouseURL()
	cfgs := make([]topology.Config, 3)
	procs := make([]*testkit.Proc, 3)
	var mu sync.Mutex
	for i := range procs {
		cfgs[i] = instanceOf(t, base)
		procs[i] = testkit.StartProcess(t, cfgs[i])
	}
	registry := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		return procs[i].Registry
	}
	type reg struct {
		subject, schema string
		id              int
	}
	var (
		regsMu sync.Mutex
		regs   []reg
		fails  atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				field := fmt.Sprintf("f_%d_%d", w, k)
				if k%4 == 0 {
					field = fmt.Sprintf("shared_%d", k/4) // the same schema under the subjects of every worker
				}
				schema := fmt.Sprintf(`{"type":"record","name":"R","fields":[{"name":"%s","type":"long"}]}`, field)
				subject := fmt.Sprintf("reg-%d-%d", w, k)
				body := testkit.MustJSON(map[string]string{"schema": schema})
				for attempt := 0; ; attempt++ {
					r, err := testkit.Try("POST", registry((w+attempt+rng.Intn(2))%3)+"/subjects/"+subject+"/versions", body, 20*time.Second, "Content-Type", registryCT)
					if err == nil && r.Status == 200 {
						var out struct{ ID int }
						_ = json.Unmarshal(r.Body, &out)
						regsMu.Lock()
						regs = append(regs, reg{subject, schema, out.ID})
						regsMu.Unlock()
						break
					}
					fails.Add(1)
					if attempt > 20 {
						t.Errorf("registering %s failed 20 times: %v %v", subject, err, r)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}(w)
	}
	for i := 0; i < 3; i++ {
		time.Sleep(6 * time.Second)
		mu.Lock()
		procs[i].Kill()
		mu.Unlock()
		time.Sleep(time.Second)
		p := testkit.StartProcess(t, cfgs[i])
		mu.Lock()
		procs[i] = p
		mu.Unlock()
		t.Logf("instance %d killed and restarted; %d registrations so far", i, len(regs))
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d registrations, %d attempts failed and were retried elsewhere", len(regs), fails.Load())

	idOf := map[string]int{}
	schemaOf := map[int]string{}
	for _, r := range regs {
		if id, ok := idOf[r.schema]; ok && id != r.id {
			t.Fatalf("schema %s got ids %d and %d", r.schema, id, r.id)
		}
		if s, ok := schemaOf[r.id]; ok && s != r.schema {
			t.Fatalf("id %d was given to %s and to %s", r.id, s, r.schema)
		}
		idOf[r.schema], schemaOf[r.id] = r.id, r.schema
	}
	// Every instance answers the same: the schema of every id, and every subject's versions.
	var answers []string
	for i := range procs {
		select {
		case <-procs[i].Exited():
			t.Fatalf("instance %d exited:\n%s", i, procs[i].Log())
		default:
		}
		var sb strings.Builder
		ids := make([]int, 0, len(schemaOf))
		for id := range schemaOf {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		for _, id := range ids {
			r := testkit.Do(t, "GET", fmt.Sprintf("%s/schemas/ids/%d", procs[i].Registry, id), "")
			var out struct{ Schema string }
			_ = json.Unmarshal(r.Body, &out)
			if r.Status != 200 || !strings.Contains(out.Schema, fieldOf(schemaOf[id])) {
				t.Fatalf("instance %d: id %d is %d %s, registered as %s", i, id, r.Status, r.Body, schemaOf[id])
			}
			fmt.Fprintf(&sb, "%d=%s\n", id, out.Schema)
		}
		subjects := testkit.Do(t, "GET", procs[i].Registry+"/subjects", "")
		fmt.Fprintf(&sb, "%s\n", subjects.Body)
		for _, r := range regs {
			v := testkit.Do(t, "GET", procs[i].Registry+"/subjects/"+r.subject+"/versions/latest", "")
			var out struct{ ID int }
			_ = json.Unmarshal(v.Body, &out)
			if out.ID != r.id {
				t.Fatalf("instance %d: subject %s holds id %d, registered as %d", i, r.subject, out.ID, r.id)
			}
		}
		answers = append(answers, sb.String())
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Fatal("the instances answer differently")
	}
	t.Logf("%d schemas, %d ids, the same on all three instances", len(idOf), len(schemaOf))
}

// fieldOf is the quoted name of a test schema's only field.
func fieldOf(schema string) string {
	const at = `"fields":[{"name":"`
	rest := schema[strings.Index(schema, at)+len(at):]
	return `"` + rest[:strings.IndexByte(rest, '"')] + `"`
}

// TestBrokerOutage: Kafka goes away for a minute under REST load and registry reads. Every produce is
// answered within --produce-timeout (with the retriable 50003, or 429 and Retry-After once the in-flight
// budget is spent), registry reads keep being answered from the local store in milliseconds, nothing that
// was accepted is lost, and produces are taken again within seconds of Kafka's return.
func TestBrokerOutage(t *testing.T) {
	broker := testkit.StartKafka(t)
	brokers := broker.Brokers()
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	cfg.ProduceTimeout = 4 * time.Second
	cfg.RegistryTimeout = 4 * time.Second
	cfg.MaxRequestBytes = 16 << 10
	cfg.MaxInflightBytes = 64 << 10
	topic := testkit.Topic(t, "outage")
	testkit.CreateTopic(t, brokers, topic, 2)
	p := testkit.StartProcess(t, cfg, "--max-request-bytes", "16384", "--max-inflight-bytes", "65536")
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)

	var (
		mu         sync.Mutex
		accepted   = map[int64]bool{}
		statuses   = map[string]int{}
		slowest    time.Duration
		readSlow   time.Duration
		readFails  int
		down       atomic.Bool
		backAt     atomic.Int64 // unix nanos when Kafka answered again
		firstOK    atomic.Int64 // unix nanos of the first accepted produce after that
		nextID     atomic.Int64
		errorsSeen = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var recs []string
				var ids []int64
				for i := 0; i < 40; i++ {
					id := nextID.Add(1)
					ids = append(ids, id)
					recs = append(recs, fmt.Sprintf(`{"value":{"id":%d,"payload":"%s"}}`, id, strings.Repeat("p", 200)))
				}
				body := fmt.Sprintf(`{"value_schema_id":%d,"records":[%s]}`, id, strings.Join(recs, ","))
				start := time.Now()
				r, err := testkit.Try("POST", p.REST+"/topics/"+topic, body, time.Minute, "Content-Type", "application/vnd.kafka.avro.v2+json")
				took := time.Since(start)
				mu.Lock()
				if took > slowest {
					slowest = took
				}
				key := "error"
				if err == nil {
					key = fmt.Sprint(r.Status, "/", r.ErrorCode())
					if r.Status == 429 && r.Header.Get("Retry-After") == "" {
						t.Errorf("429 without Retry-After")
					}
				}
				if err == nil && r.Status == 200 {
					var out struct {
						Offsets []struct {
							Offset    *int64  `json:"offset"`
							ErrorCode *int    `json:"error_code"`
							Error     *string `json:"error"`
						} `json:"offsets"`
					}
					_ = json.Unmarshal(r.Body, &out)
					okAll := true
					for i, o := range out.Offsets {
						if o.Offset != nil {
							accepted[ids[i]] = true
						} else {
							okAll = false
							key = fmt.Sprint("200/", *o.ErrorCode)
							if *o.ErrorCode != 50003 && len(errorsSeen) < 5 {
								errorsSeen[*o.Error] = true
							}
						}
					}
					if okAll && backAt.Load() != 0 && firstOK.Load() == 0 {
						firstOK.Store(time.Now().UnixNano())
					}
				}
				if down.Load() {
					key = "outage " + key
				}
				statuses[key]++
				mu.Unlock()
				if err != nil || r.Status != 200 {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // registry reads, all along
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, path := range []string{"/subjects", fmt.Sprintf("/schemas/ids/%d", id), "/subjects/" + topic + "-value/versions/latest"} {
				start := time.Now()
				r, err := testkit.Try("GET", p.Registry+path, "", 10*time.Second)
				took := time.Since(start)
				mu.Lock()
				if took > readSlow {
					readSlow = took
				}
				if err != nil || r.Status != 200 {
					readFails++
				}
				mu.Unlock()
			}
		}
	}()
	time.Sleep(5 * time.Second)
	down.Store(true)
	if err := broker.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Log("Kafka stopped")
	time.Sleep(60 * time.Second)
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	backAt.Store(time.Now().UnixNano())
	t.Log("Kafka is back")
	time.Sleep(20 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers: %v; errors other than 50003: %v", statuses, errorsSeen)
	t.Logf("slowest produce %s (--produce-timeout %s); slowest registry read %s, %d failed", slowest.Round(time.Millisecond), cfg.ProduceTimeout,
		readSlow.Round(time.Millisecond), readFails)
	if slowest > cfg.ProduceTimeout+2*time.Second {
		t.Errorf("a produce took %s", slowest)
	}
	if readFails > 0 || readSlow > time.Second {
		t.Errorf("registry reads: %d failed, the slowest took %s", readFails, readSlow)
	}
	if firstOK.Load() == 0 {
		t.Fatal("no produce was accepted after Kafka came back")
	}
	t.Logf("first produce accepted %s after Kafka was back", time.Duration(firstOK.Load()-backAt.Load()).Round(time.Millisecond))
	if d := time.Duration(firstOK.Load() - backAt.Load()); d > 15*time.Second {
		t.Errorf("produces taken again only %s after Kafka came back", d)
	}
	for k := range statuses {
		if strings.Contains(k, "50002") || strings.Contains(k, "error") {
			t.Errorf("answered %s: with Kafka away every refusal is retriable (50003, 429)", k)
		}
	}
	if statuses["outage 429/42901"] == 0 {
		t.Errorf("the in-flight budget was never spent during the outage: %v", statuses)
	}
	// Nothing accepted is lost: every id acknowledged with an offset is a row (the table may hold more:
	// records that timed out for the client but reached Kafka).
	want := len(accepted)
	rows := testkit.WaitQuery(t, cfg.WarehouseURL(), "SELECT count(*) FROM "+tableOf(topic), 2*time.Minute, func(r [][]string) bool {
		var n int
		fmt.Sscan(r[0][0], &n)
		return n >= want
	})
	missing := 0
	got, err := testkit.Query(t, cfg.WarehouseURL(), "SELECT id FROM "+tableOf(topic))
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, r := range got {
		var v int64
		fmt.Sscan(r[0], &v)
		have[v] = true
	}
	for id := range accepted {
		if !have[id] {
			missing++
		}
	}
	t.Logf("%d records accepted, table holds %s rows", want, rows[0][0])
	if missing > 0 {
		t.Fatalf("%d accepted records are not in the table", missing)
	}
	settle(t, brokers, cfg, topic, int(testkit.EndOffsets(t, brokers, topic)), time.Minute)
}
