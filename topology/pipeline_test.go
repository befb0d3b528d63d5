package topology_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/testkit"
)

// registerSchema registers a schema through minipipe's registry and returns its id.
func registerSchema(t *testing.T, registry, subject, schema string) int {
	t.Helper()
	r := testkit.Do(t, "POST", registry+"/subjects/"+subject+"/versions", testkit.MustJSON(map[string]string{"schema": schema}),
		"Content-Type", "application/vnd.schemaregistry.v1+json")
	var out struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != 200 {
		t.Fatalf("register %s: %d %s", subject, r.Status, r.Body)
	}
	return out.ID
}

// frame encodes a datum (Avro JSON) in Confluent's wire format.
func frame(t *testing.T, id int, schema, datum string) []byte {
	t.Helper()
	b, err := avro.EncodeJSON(schema, id, datum)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceRaw writes records straight to Kafka, as any producer would.
func produceRaw(t *testing.T, brokers []string, topic string, values ...[]byte) {
	t.Helper()
	produceTo(t, brokers, topic, -1, values...)
}

// produceTo writes records straight to one partition of a topic (-1: the producer's choice).
func produceTo(t *testing.T, brokers []string, topic string, partition int32, values ...[]byte) {
	t.Helper()
	cl, err := (kafka.Config{Brokers: brokers}).NewProducer("minipipe-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Value: v, Partition: partition})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestDeadLetters: records that cannot become rows go to <topic>.dlq with the reason in headers; the good
// records around them are committed.
func TestDeadLetters(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = 2 * time.Second
	app := testkit.StartApp(t, cfg)
	topic := testkit.Topic(t, "dlq")
	testkit.CreateTopic(t, brokers, topic, 1)

	user := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"n","type":"int"}]}`
	id := registerSchema(t, app.Registry, topic+"-value", user)
	// A schema of another subject whose n is a string: this table cannot take it.
	other := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"n","type":"string"}]}`
	otherID := registerSchema(t, app.Registry, "somewhere-else-value", other)
	good := func(i int) []byte { return frame(t, id, user, fmt.Sprintf(`{"id":%d,"n":%d}`, i, i)) }
	truncated := good(99)
	truncated = truncated[:len(truncated)-1]
	produceRaw(t, brokers, topic,
		good(1),
		[]byte("garbage, not Avro"),
		good(2),
		frame(t, 987654, user, `{"id":3,"n":3}`), // unknown schema id
		good(4),
		frame(t, otherID, other, `{"id":5,"n":"five"}`),
		truncated,
		good(6),
	)
	rows := testkit.WaitQuery(t, cfg.WarehouseURL(), "SELECT id, n FROM "+strings.ReplaceAll(topic, "-", "_")+" ORDER BY id", 60*time.Second,
		func(r [][]string) bool { return len(r) == 4 })
	if fmt.Sprint(rows) != "[[1 1] [2 2] [4 4] [6 6]]" {
		t.Fatalf("rows %v", rows)
	}
	msgs := testkit.Consume(t, brokers, topic+".dlq", 4, 30*time.Second)
	var codes []string
	for _, m := range msgs {
		h := map[string]string{}
		for _, hd := range m.Headers {
			h[string(hd.Key)] = string(hd.Value)
		}
		if h["minipipe.error.reason"] == "" || h["minipipe.source.topic"] != topic || h["minipipe.source.offset"] == "" {
			t.Errorf("dead letter without its reason or source: %v", h)
		}
		codes = append(codes, h["minipipe.error.code"]+"@"+h["minipipe.source.offset"])
	}
	sort.Strings(codes)
	want := []string{"corrupt-datum@6", "not-confluent-avro@1", "schema-rejected@5", "unknown-schema-id@3"}
	if !reflect.DeepEqual(codes, want) {
		t.Fatalf("dead letters %v, want %v", codes, want)
	}
	// The counter says so too.
	m := testkit.Do(t, "GET", app.HTTP+"/metrics", "")
	if !strings.Contains(string(m.Body), `minipipe_dlq_records_total{reason="corrupt-datum",topic="`+topic+`"} 1`) {
		t.Errorf("metrics lack the dead-letter count")
	}
}

// deleteTopic removes a topic if it exists (tests that must use a fixed name, like the seed's).
func deleteTopic(t *testing.T, brokers []string, topic string) {
	admin, err := sarama.NewClusterAdmin(brokers, (kafka.Config{}).Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err == nil {
		time.Sleep(2 * time.Second)
	}
}
