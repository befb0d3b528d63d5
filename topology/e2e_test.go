package topology_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// The seed README's two curl commands, verbatim but for the host.
const seedCurl1 = `curl -X POST -H "Content-Type: application/vnd.kafka.avro.v1+json" \
      --data '{"value_schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]}", 
               "records": [{"value": {"name": "alice"}}]}' \
      "http://$(minikube ip):32767/topics/connect_test"`

const seedCurl2 = `curl -X POST -H "Content-Type: application/vnd.kafka.avro.v1+json" \
      --data '{"value_schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}, {\"name\": \"lastname\", \"type\": [\"null\", \"string\"], \"default\": null}]}", 
               "records": [{"value": {"name": "bob", "lastname": {"string": "smith"}}}]}' \
      "http://$(minikube ip):32767/topics/connect_test"`

// curl runs a seed command against addr and returns the HTTP status and body.
func curl(t *testing.T, command, addr string) (int, []byte) {
	t.Helper()
	command = strings.Replace(command, "$(minikube ip):32767", addr, 1)
	command = strings.Replace(command, "curl ", `curl -s -w '\n%{http_code}' `, 1)
	out, err := exec.Command("bash", "-c", command).Output()
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	out = bytes.TrimSpace(out)
	i := bytes.LastIndexByte(out, '\n')
	var status int
	fmt.Sscan(string(out[i+1:]), &status)
	return status, out[:i]
}

// TestSeedWalkthrough follows the seed README's "Example Use Case" on a real broker: its two curl
// commands, verbatim but for the host, then the query within the rotate interval.
func TestSeedWalkthrough(t *testing.T) {
	brokers := testkit.Kafka(t)
	seedWalkthrough(t, brokers, testkit.TestConfig(t, brokers))
}

// seedWalkthrough runs the walkthrough with minipipe configured by cfg (its brokers, and how it reaches
// them); the test's own checks reach the cluster at brokers.
func seedWalkthrough(t *testing.T, brokers []string, cfg topology.Config) {
	deleteTopic(t, brokers, "connect_test")
	cfg.Topics = "connect_test"
	app := testkit.StartApp(t, cfg)
	addr := app.Config.RestAddr

	type resp struct {
		Offsets []struct {
			Partition *int   `json:"partition"`
			Offset    *int64 `json:"offset"`
		} `json:"offsets"`
		ValueSchemaID *int `json:"value_schema_id"`
	}
	var ids []int
	for i, cmd := range []string{seedCurl1, seedCurl2} {
		status, body := curl(t, cmd, addr)
		var r resp
		if err := json.Unmarshal(body, &r); status != 200 || err != nil || len(r.Offsets) != 1 || r.Offsets[0].Offset == nil || r.ValueSchemaID == nil {
			t.Fatalf("seed curl %d: %d %s", i+1, status, body)
		}
		ids = append(ids, *r.ValueSchemaID)
	}
	// The second request registered version 2 of connect_test-value.
	v := testkit.Do(t, "GET", app.Registry+"/subjects/connect_test-value/versions/2", "")
	if v.Status != 200 || !strings.Contains(string(v.Body), fmt.Sprintf(`"id":%d`, ids[1])) || ids[0] == ids[1] {
		t.Fatalf("version 2 of connect_test-value: %d %s (ids %v)", v.Status, v.Body, ids)
	}
	// A schema that adds a field without a default is refused with 408/40801 and writes nothing.
	before := testkit.EndOffsets(t, brokers, "connect_test")
	bad := strings.Replace(seedCurl2, `{\"name\": \"lastname\", \"type\": [\"null\", \"string\"], \"default\": null}`,
		`{\"name\": \"lastname\", \"type\": [\"null\", \"string\"], \"default\": null}, {\"name\": \"age\", \"type\": \"int\"}`, 1)
	bad = strings.Replace(bad, `"lastname": {"string": "smith"}}`, `"lastname": {"string": "smith"}, "age": 42}`, 1)
	status, body := curl(t, bad, addr)
	var e struct {
		Code int `json:"error_code"`
	}
	_ = json.Unmarshal(body, &e)
	if status != 408 || e.Code != 40801 {
		t.Fatalf("incompatible schema: %d %s", status, body)
	}
	if after := testkit.EndOffsets(t, brokers, "connect_test"); after != before {
		t.Fatalf("the refused request wrote %d records", after-before)
	}
	if v := testkit.Do(t, "GET", app.Registry+"/subjects/connect_test-value/versions", ""); string(v.Body) != "[1,2]" {
		t.Fatalf("versions after the refusal: %s", v.Body)
	}
	// Within the rotate interval, the rows are a table: the new column is NULL for alice's row.
	start := time.Now()
	rows := testkit.WaitQuery(t, cfg.WarehouseURL(), "SELECT name, lastname FROM connect_test ORDER BY name", cfg.RotateInterval+15*time.Second,
		func(r [][]string) bool { return len(r) == 2 })
	if fmt.Sprint(rows) != "[[alice NULL] [bob smith]]" {
		t.Fatalf("query gave %v", rows)
	}
	t.Logf("rows queryable %v after the second request (rotate interval %v)", time.Since(start).Round(100*time.Millisecond), cfg.RotateInterval)
	// The binary answers the same.
	out, err := exec.Command(testkit.Binary(t), "query", "--warehouse", cfg.WarehouseURL(), "SELECT name, lastname FROM connect_test ORDER BY name").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alice | NULL") || !strings.Contains(string(out), "bob   | smith") {
		t.Fatalf("minipipe query: %v\n%s", err, out)
	}
}

// TestConfluentPythonClient: Confluent's own Python client, from PyPI, reads what the REST edge wrote with
// its AvroDeserializer pointed at minipipe's registry, and its AvroSerializer registers in minipipe's
// registry while producing straight to Kafka.
func TestConfluentPythonClient(t *testing.T) {
	python := testkit.Python(t)
	brokers := testkit.Kafka(t)
	app := testkit.StartApp(t, testkit.TestConfig(t, brokers))
	script := filepath.Join(testkit.Root(), "testkit", "python", "confluent_client.py")

	topic := testkit.Topic(t, "py-read")
	schema := `{"type":"record","name":"Order","namespace":"shop","fields":[` +
		`{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"price","type":"double"},` +
		`{"name":"note","type":["null","string"],"default":null},{"name":"tags","type":{"type":"array","items":"string"}},` +
		`{"name":"state","type":{"type":"enum","name":"State","symbols":["NEW","PAID"]}}]}`
	var records []any
	var want []map[string]any
	for i := 0; i < 20; i++ {
		note := any(nil)
		wantNote := any(nil)
		if i%3 == 0 {
			note = map[string]any{"string": fmt.Sprintf("note %d", i)}
			wantNote = fmt.Sprintf("note %d", i)
		}
		state := []string{"NEW", "PAID"}[i%2]
		records = append(records, map[string]any{"key": fmt.Sprintf("k%d", i), "value": map[string]any{
			"id": i, "item": fmt.Sprintf("item-%d", i), "price": float64(i) + 0.5, "note": note, "tags": []string{"a", fmt.Sprint(i)}, "state": state}})
		want = append(want, map[string]any{"id": float64(i), "item": fmt.Sprintf("item-%d", i), "price": float64(i) + 0.5, "note": wantNote,
			"tags": []any{"a", fmt.Sprint(i)}, "state": state})
	}
	body := testkit.MustJSON(map[string]any{"key_schema": `"string"`, "value_schema": schema, "records": records})
	r := testkit.Do(t, "POST", app.REST+"/topics/"+topic, body, "Content-Type", "application/vnd.kafka.avro.v2+json")
	if r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	cmd := exec.Command(python, script, "consume", "--bootstrap", strings.Join(brokers, ","), "--registry", app.Registry,
		"--topic", topic, "--count", "20")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python consumer: %v\n%s", err, stderr.String())
	}
	var got []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var rec struct {
			Value map[string]any `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("python output %q: %v", sc.Text(), err)
		}
		got = append(got, rec.Value)
	}
	sort.Slice(got, func(i, j int) bool { return got[i]["id"].(float64) < got[j]["id"].(float64) })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AvroDeserializer read\n%v\nwant\n%v", got, want)
	}

	// AvroSerializer producing straight to Kafka registers its schema in minipipe's registry.
	topic2 := testkit.Topic(t, "py-write")
	testkit.CreateTopic(t, brokers, topic2, 2)
	schema2 := `{"type":"record","name":"Click","fields":[{"name":"url","type":"string"},{"name":"n","type":"int"}]}`
	recFile := filepath.Join(t.TempDir(), "records.json")
	var values []any
	for i := 0; i < 10; i++ {
		values = append(values, map[string]any{"url": fmt.Sprintf("/p/%d", i), "n": i})
	}
	if err := os.WriteFile(recFile, []byte(testkit.MustJSON(values)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(python, script, "produce", "--bootstrap", strings.Join(brokers, ","), "--registry", app.Registry,
		"--topic", topic2, "--schema", schema2, "--records", recFile)
	stderr.Reset()
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("python producer: %v\n%s%s", err, out, stderr.String())
	}
	subjects := testkit.Do(t, "GET", app.Registry+"/subjects", "")
	if !strings.Contains(string(subjects.Body), `"`+topic2+`-value"`) {
		t.Fatalf("GET /subjects after AvroSerializer: %s", subjects.Body)
	}
	latest := testkit.Do(t, "GET", app.Registry+"/subjects/"+topic2+"-value/versions/latest", "")
	var v struct {
		ID int `json:"id"`
	}
	_ = json.Unmarshal(latest.Body, &v)
	// The records land in their table too.
	table := strings.ReplaceAll(topic2, "-", "_")
	rows := testkit.WaitQuery(t, app.Config.WarehouseURL(), "SELECT url, n FROM "+table+" ORDER BY n", 60*time.Second,
		func(r [][]string) bool { return len(r) == 10 })
	if rows[0][0] != "/p/0" || rows[9][1] != "9" {
		t.Fatalf("table %s: %v", table, rows)
	}
	msgs := testkit.Consume(t, brokers, topic2, 10, 30*time.Second)
	sch, _ := avro.Parse(schema2)
	codec, _ := avro.NewCodec(sch)
	for _, m := range msgs {
		id, payload, err := avro.ParseWire(m.Value)
		if err != nil || id != v.ID {
			t.Fatalf("record framed with id %d (%v), registry says %d", id, err, v.ID)
		}
		if _, err := codec.NativeFromBinary(payload); err != nil {
			t.Fatalf("record does not decode: %v", err)
		}
	}
}

// TestTwoInstances: two minipipe processes on one broker share one registry: what one registers the other
// reads within a second, the same schema registered concurrently through both gets one id, and writes
// keep working when the instance that owns registry writes is killed.
func TestTwoInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfgA := testkit.TestConfig(t, brokers)
	cfgB := testkit.TestConfig(t, brokers)
	cfgB.RegistryTopic = cfgA.RegistryTopic
	a := testkit.StartProcess(t, cfgA)
	b := testkit.StartProcess(t, cfgB)
	ct := []string{"Content-Type", "application/vnd.schemaregistry.v1+json"}

	register := func(base, subject, schema string) (int, int) {
		r := testkit.Do(t, "POST", base+"/subjects/"+subject+"/versions", testkit.MustJSON(map[string]string{"schema": schema}), ct...)
		var out struct {
			ID int `json:"id"`
		}
		_ = json.Unmarshal(r.Body, &out)
		return r.Status, out.ID
	}

	// Registered through A, readable through B within a second.
	status, id := register(a.Registry, "shared-value", `{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]}`)
	if status != 200 {
		t.Fatalf("register through A: %d", status)
	}
	start := time.Now()
	for {
		r := testkit.Do(t, "GET", fmt.Sprintf("%s/schemas/ids/%d", b.Registry, id), "")
		if r.Status == 200 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("schema %d not readable through B after %v: %d %s", id, time.Since(start), r.Status, r.Body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("registered through A, readable through B after %v", time.Since(start))

	// The same schema, concurrently through both, under two subjects: one id.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[int]int{}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			base := []string{a.Registry, b.Registry}[i%2]
			subject := []string{"race-a-value", "race-b-value"}[(i/2)%2]
			status, id := register(base, subject, `{"type":"record","name":"Race","fields":[{"name":"y","type":"string"}]}`)
			mu.Lock()
			defer mu.Unlock()
			if status != 200 {
				ids[-status]++
				return
			}
			ids[id]++
		}(i)
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Fatalf("concurrent registrations of one schema got ids (or -status) %v", ids)
	}
	// Different schemas concurrently through both: distinct ids, each readable through both.
	seen := map[int]string{}
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			base := []string{a.Registry, b.Registry}[i%2]
			schema := fmt.Sprintf(`{"type":"record","name":"D%d","fields":[{"name":"z","type":"int"}]}`, i)
			status, id := register(base, fmt.Sprintf("distinct-%d-value", i), schema)
			mu.Lock()
			defer mu.Unlock()
			if status != 200 {
				t.Errorf("register distinct %d: %d", i, status)
				return
			}
			if other, dup := seen[id]; dup {
				t.Errorf("id %d given to two schemas: %s and %s", id, other, schema)
			}
			seen[id] = schema
		}(i)
	}
	wg.Wait()
	for id := range seen {
		for _, base := range []string{a.Registry, b.Registry} {
			if r := testkit.Do(t, "GET", fmt.Sprintf("%s/schemas/ids/%d", base, id), ""); r.Status != 200 {
				t.Errorf("id %d through %s: %d", id, base, r.Status)
			}
		}
	}

	// Kill A: B takes over registry writes once the group rebalances.
	a.Kill()
	status, id2 := register(b.Registry, "after-kill-value", `"long"`)
	if status != 200 || id2 == 0 {
		t.Fatalf("register through B after A was killed: %d", status)
	}
	// A restarted from its data directory has kept its state and catches up with what B wrote.
	a2 := testkit.StartProcess(t, cfgA)
	if r := testkit.Do(t, "GET", fmt.Sprintf("%s/schemas/ids/%d", a2.Registry, id2), ""); r.Status != 200 {
		t.Fatalf("restarted A does not see id %d: %d %s", id2, r.Status, r.Body)
	}
	if _, again := register(a2.Registry, "shared-value", `{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]}`); again != id {
		t.Fatalf("re-registration through restarted A gave id %d, want %d", again, id)
	}
}

// TestRestartKeepsRegistryWritable restarts minipipe on its own data directory, whose Pebble store already
// holds the registry's state, and registers a schema as soon as it is ready: the store must know it is up to
// date without any new record arriving (it once waited for one, and every write timed out with 50002).
func TestRestartKeepsRegistryWritable(t *testing.T) {
	cfg := testkit.TestConfig(t, testkit.Kafka(t))
	ct := []string{"Content-Type", "application/vnd.schemaregistry.v1+json"}
	for i := 0; i < 3; i++ {
		p := testkit.StartProcess(t, cfg)
		schema := fmt.Sprintf(`{"type":"record","name":"Restart%d","fields":[{"name":"x","type":"int"}]}`, i)
		start := time.Now()
		r := testkit.Do(t, "POST", p.Registry+fmt.Sprintf("/subjects/restart-%d-value/versions", i), testkit.MustJSON(map[string]string{"schema": schema}), ct...)
		if r.Status != 200 {
			t.Fatalf("run %d: registering right after ready: %d %s", i, r.Status, r.Body)
		}
		t.Logf("run %d: registered %s in %v", i, r.Body, time.Since(start))
		p.Stop()
	}
}
