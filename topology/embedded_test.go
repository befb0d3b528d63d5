package topology_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/minipipe/minipipe/testkit"
)

// The --embedded-kafka try-out mode: minipipe on an in-process kfake broker, no Java anywhere.
func TestEmbeddedKafka(t *testing.T) {
	cfg := testkit.TestConfig(t, []string{"127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))})
	cfg.EmbeddedKafka = true
	app := testkit.StartApp(t, cfg)
	r := testkit.Do(t, "POST", app.REST+"/topics/tryout",
		`{"value_schema":"{\"type\":\"record\",\"name\":\"User\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"}]}","records":[{"value":{"name":"alice"}}]}`,
		"Content-Type", "application/vnd.kafka.avro.v1+json")
	if r.Status != 200 || !strings.Contains(string(r.Body), `"value_schema_id":1`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if s := testkit.Do(t, "GET", app.Registry+"/subjects", ""); string(s.Body) != `["tryout-value"]` {
		t.Fatalf("subjects: %s", s.Body)
	}
}
