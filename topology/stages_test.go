package topology_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// cli runs the minipipe binary and returns its standard output.
func cli(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("minipipe %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestIdempotentProduceAndStageState sends the seed's first curl with one Idempotency-Key five times,
// once more after a SIGKILL of minipipe, and once more after --data-dir was deleted: one row. Five sends
// without the header: five rows. The printed topology is the one running, and `minipipe topics` reports
// the same counts before and after the data dir is rebuilt from the group table.
func TestIdempotentProduceAndStageState(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = 2 * time.Second
	cfg.Warehouse = "file://" + t.TempDir() // outside --data-dir, which the test deletes
	topic := testkit.Topic(t, "idem")
	table := tableOf(topic)
	p := testkit.StartProcess(t, cfg)
	addr := cfg.RestAddr

	withKey := strings.Replace(seedCurl1, "curl -X POST", `curl -X POST -H "Idempotency-Key: \"seed-request-1\""`, 1)
	withKey = strings.Replace(withKey, "/topics/connect_test", "/topics/"+topic, 1)
	plain := strings.Replace(seedCurl1, `"alice"`, `"carol"`, 1)
	plain = strings.Replace(plain, "/topics/connect_test", "/topics/"+topic, 1)
	send := func(cmd string) {
		t.Helper()
		if status, body := curl(t, cmd, addr); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	for i := 0; i < 5; i++ {
		send(withKey)
		send(plain)
	}
	// A header that cannot be a key is refused, with nothing written.
	bad := testkit.Do(t, "POST", "http://"+addr+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`,
		"Content-Type", "application/vnd.kafka.binary.v2+json", "Idempotency-Key", strings.Repeat("k", 300))
	if bad.Status != 400 || bad.ErrorCode() != 400 {
		t.Fatalf("an Idempotency-Key of 300 characters: %d %s", bad.Status, bad.Body)
	}

	count := func(want string) {
		t.Helper()
		rows := testkit.WaitQuery(t, cfg.WarehouseURL(), "SELECT name, count(*) FROM "+table+" GROUP BY name ORDER BY name", 60*time.Second,
			func(r [][]string) bool { return fmt.Sprint(r) == want })
		if fmt.Sprint(rows) != want {
			t.Fatalf("rows by name: %v, want %s", rows, want)
		}
	}
	count("[[alice 1] [carol 5]]")

	// The topology printed is the one running: every goka graph of this instance is declared, with the
	// same input and group table, and the group table is in Kafka.
	args := testkit.Args(cfg)[1:]
	var declared topology.Topology
	if err := json.Unmarshal(cli(t, append([]string{"topology", "--format", "json"}, args...)...), &declared); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.HTTP + "/topology")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var running []topology.Running
	if err := json.Unmarshal(body, &running); err != nil {
		t.Fatalf("/topology: %v: %s", err, body)
	}
	byGroup := map[string]topology.Processor{}
	for _, d := range declared.Processors {
		byGroup[d.Group] = d
	}
	var sawIngest bool
	for _, r := range running {
		d, ok := byGroup[r.Group]
		if !ok {
			t.Errorf("group %s runs but `minipipe topology` does not declare it (declared: %s)", r.Group, body)
			continue
		}
		if fmt.Sprint(r.Inputs) != fmt.Sprint([]string{d.Input}) || r.Table != d.Table {
			t.Errorf("group %s runs %+v, declared input %s table %q", r.Group, r, d.Input, d.Table)
		}
		if d.Input == topic {
			sawIngest = true
			if d.Table == "" || testkit.EndOffsets(t, brokers, d.Table) == 0 {
				t.Errorf("the ingest processor's group table %q is not in Kafka", d.Table)
			}
			if len(d.Steps) != 3 || d.Steps[0].Name != "ingest" || d.Steps[1].Name != "validate" || d.Steps[2].Name != "bucket" {
				t.Errorf("ingest processor steps: %+v", d.Steps)
			}
		}
	}
	if !sawIngest || len(running) != len(declared.Processors) {
		t.Errorf("running %s, declared %d processors", body, len(declared.Processors))
	}
	text := string(cli(t, append([]string{"topology"}, args...)...))
	for _, want := range []string{"ingest → validate → bucket", "Pebble", topology.Names{Pipeline: cfg.PipelineName}.CommitGroup()} {
		if !strings.Contains(text, want) {
			t.Errorf("`minipipe topology` does not say %q:\n%s", want, text)
		}
	}

	stats := func() topology.SourceStats {
		t.Helper()
		var all []topology.SourceStats
		if err := json.Unmarshal(cli(t, append([]string{"topics", "--json"}, args...)...), &all); err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Topic == topic {
				return s
			}
		}
		t.Fatalf("`minipipe topics` does not list %s", topic)
		return topology.SourceStats{}
	}
	waitStats := func(accepted, repeats int64) topology.SourceStats {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := stats()
			a, r, _, _, schemas := s.Total()
			if a == accepted && r == repeats && len(schemas) == 1 {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: accepted %d, repeats %d, schemas %v; want %d, %d, one schema", topic, a, r, schemas, accepted, repeats)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitStats(6, 4)

	// SIGKILL, restart, one more retry: still one row.
	p.Kill()
	p = testkit.StartProcess(t, cfg)
	send(withKey)
	waitStats(6, 5)

	// --data-dir lost: the stages' state comes back from the group table; the retry is still recognised.
	p.Stop()
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	p = testkit.StartProcess(t, cfg)
	send(withKey)
	before := waitStats(6, 6)
	time.Sleep(cfg.RotateInterval + time.Second)
	count("[[alice 1] [carol 5]]")
	if got := p.Metric("minipipe_ingest_idempotent_repeats_total"); got != 1 {
		t.Errorf("minipipe_ingest_idempotent_repeats_total %v after one retry, want 1", got)
	}
	out := string(cli(t, append([]string{"topics"}, args...)...))
	if !strings.Contains(out, topic) || !strings.Contains(out, "schema id") {
		t.Errorf("minipipe topics:\n%s", out)
	}
	_, _, _, _, schemas := before.Total()
	t.Logf("one row from 7 sends with an Idempotency-Key (a SIGKILL and a lost --data-dir between them), five from five without; schema %d seen in %d partition(s)\n%s",
		schemas[0].ID, schemas[0].Partitions, out)
}
