package edge_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	avroV2   = "application/vnd.kafka.avro.v2+json"
	avroV1   = "application/vnd.kafka.avro.v1+json"
	jsonV2   = "application/vnd.kafka.json.v2+json"
	binaryV2 = "application/vnd.kafka.binary.v2+json"
	v2       = "application/vnd.kafka.v2+json"
)

type offsetsResp struct {
	Offsets []struct {
		Partition *int32  `json:"partition"`
		Offset    *int64  `json:"offset"`
		ErrorCode *int    `json:"error_code"`
		Error     *string `json:"error"`
	} `json:"offsets"`
	KeySchemaID   *int `json:"key_schema_id"`
	ValueSchemaID *int `json:"value_schema_id"`
}

func produce(t *testing.T, url, ct, body string) (testkit.Response, offsetsResp) {
	t.Helper()
	resp := testkit.Do(t, "POST", url, body, "Content-Type", ct)
	var out offsetsResp
	if resp.Status == 200 {
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			t.Fatalf("produce response: %v: %s", err, resp.Body)
		}
		for i, o := range out.Offsets {
			if o.Partition == nil || o.Offset == nil || o.ErrorCode != nil {
				t.Fatalf("offset %d has an error: %s", i, resp.Body)
			}
		}
	}
	return resp, out
}

// TestProducePaths walks every REST Proxy produce path of Confluent's v1/v2 API (shared/reference
// restproxy-registry.md §1) on a real broker and reads back what reached Kafka.
func TestProducePaths(t *testing.T) {
	brokers := testkit.Kafka(t)
	app := testkit.StartApp(t, testkit.TestConfig(t, brokers))

	t.Run("binary", func(t *testing.T) {
		topic := testkit.Topic(t, "bin")
		resp, out := produce(t, app.REST+"/topics/"+topic, binaryV2,
			`{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"a2Fma2E=","partition":1},{"value":"bG9ncw=="}]}`)
		if resp.Status != 200 || len(out.Offsets) != 3 || out.KeySchemaID != nil || out.ValueSchemaID != nil {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		if !strings.Contains(string(resp.Body), `"error_code":null,"error":null`) || !strings.Contains(string(resp.Body), `"key_schema_id":null`) {
			t.Errorf("nulls must be serialised as Confluent does: %s", resp.Body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != v2 {
			t.Errorf("content type %q", ct)
		}
		// The keyed record lands where Kafka's Java client would put it; the explicit partition is kept.
		if want := kafka.KeyPartition([]byte("key"), 4); *out.Offsets[0].Partition != want {
			t.Errorf("keyed record in partition %d, the Java partitioner says %d", *out.Offsets[0].Partition, want)
		}
		if *out.Offsets[1].Partition != 1 {
			t.Errorf("explicit partition ignored: %s", resp.Body)
		}
		msgs := testkit.Consume(t, brokers, topic, 3, 30*time.Second)
		got := map[string]string{}
		for _, m := range msgs {
			got[string(m.Value)] = string(m.Key)
		}
		want := map[string]string{"confluent": "key", "kafka": "", "logs": ""}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("consumed %v, want %v", got, want)
		}
	})

	t.Run("json", func(t *testing.T) {
		topic := testkit.Topic(t, "json")
		resp, out := produce(t, app.REST+"/topics/"+topic, jsonV2,
			`{"records":[{"key":"somekey","value":{"foo": "bar"}},{"value":["foo","bar"],"partition":1},{"value":53.5},{"key":null,"value":null}]}`)
		if resp.Status != 200 || len(out.Offsets) != 4 {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		msgs := testkit.Consume(t, brokers, topic, 4, 30*time.Second)
		var values []string
		for _, m := range msgs {
			if m.Value == nil {
				values = append(values, "<tombstone>")
				continue
			}
			values = append(values, string(m.Key)+"="+string(m.Value))
		}
		sort.Strings(values)
		want := []string{"<tombstone>", "=53.5", `=["foo","bar"]`, `"somekey"={"foo":"bar"}`}
		sort.Strings(want)
		if !reflect.DeepEqual(values, want) {
			t.Errorf("consumed %q, want %q", values, want)
		}
	})

	t.Run("avro", func(t *testing.T) {
		topic := testkit.Topic(t, "avro")
		keySchema := `{"type":"string"}`
		valueSchema := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`
		body := testkit.MustJSON(map[string]any{
			"key_schema": keySchema, "value_schema": valueSchema,
			"records": []any{
				map[string]any{"key": "u1", "value": map[string]any{"name": "alice"}},
				map[string]any{"key": "u2", "value": map[string]any{"name": "bob", "lastname": map[string]any{"string": "smith"}}},
			},
		})
		resp, out := produce(t, app.REST+"/topics/"+topic, avroV2, body)
		if resp.Status != 200 || out.KeySchemaID == nil || out.ValueSchemaID == nil {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		// The schemas are registered under the topic's subjects.
		for subject, id := range map[string]int{topic + "-key": *out.KeySchemaID, topic + "-value": *out.ValueSchemaID} {
			r := testkit.Do(t, "GET", app.Registry+"/subjects/"+subject+"/versions/latest", "")
			if r.Status != 200 || !strings.Contains(string(r.Body), fmt.Sprintf(`"id":%d`, id)) {
				t.Errorf("subject %s: %d %s", subject, r.Status, r.Body)
			}
		}
		// The same ids by id, and the id wins over an inline schema.
		resp2, out2 := produce(t, app.REST+"/topics/"+topic, avroV2, testkit.MustJSON(map[string]any{
			"value_schema_id": *out.ValueSchemaID, "value_schema": `"this is ignored"`,
			"records": []any{map[string]any{"value": map[string]any{"name": "carol", "lastname": nil}}},
		}))
		if resp2.Status != 200 || *out2.ValueSchemaID != *out.ValueSchemaID || out2.KeySchemaID != nil {
			t.Fatalf("by id: %d %s", resp2.Status, resp2.Body)
		}
		// What reached Kafka is Confluent's framing: magic 0, the id, Avro binary.
		msgs := testkit.Consume(t, brokers, topic, 3, 30*time.Second)
		vs, _ := avro.Parse(valueSchema)
		codec, _ := avro.NewCodec(vs)
		var names []string
		for _, m := range msgs {
			id, payload, err := avro.ParseWire(m.Value)
			if err != nil || id != *out.ValueSchemaID {
				t.Fatalf("value framing: id %d err %v", id, err)
			}
			native, err := codec.NativeFromBinary(payload)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, fmt.Sprint(native))
			if m.Key != nil {
				kid, kp, err := avro.ParseWire(m.Key)
				if err != nil || kid != *out.KeySchemaID || len(kp) != 3 {
					t.Errorf("key framing: %v %v %v", kid, kp, err)
				}
			}
		}
		sort.Strings(names)
		want := []string{"map[lastname:<nil> name:alice]", "map[lastname:<nil> name:carol]", "map[lastname:map[string:smith] name:bob]"}
		sort.Strings(want)
		if !reflect.DeepEqual(names, want) {
			t.Errorf("decoded %q, want %q", names, want)
		}
	})

	t.Run("v1 and partition endpoint", func(t *testing.T) {
		topic := testkit.Topic(t, "part")
		resp, out := produce(t, app.REST+"/topics/"+topic+"/partitions/2", avroV1,
			`{"value_schema":"{\"type\":\"int\"}","records":[{"value":12},{"value":24,"partition":0}]}`)
		if resp.Status != 200 {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.kafka.v1+json" {
			t.Errorf("v1 response content type %q", ct)
		}
		for _, o := range out.Offsets {
			if *o.Partition != 2 {
				t.Errorf("partition endpoint wrote to partition %d", *o.Partition)
			}
		}
		if *out.Offsets[1].Offset != *out.Offsets[0].Offset+1 {
			t.Errorf("offsets not in request order: %s", resp.Body)
		}
		r := testkit.Do(t, "POST", app.REST+"/topics/"+topic+"/partitions/9", `{"records":[{"value":"YQ=="}]}`, "Content-Type", binaryV2)
		if r.Status != 404 || r.ErrorCode() != 40402 {
			t.Errorf("missing partition: %d %s", r.Status, r.Body)
		}
		r = testkit.Do(t, "POST", app.REST+"/topics/"+topic, `{"records":[{"value":"YQ==","partition":7}]}`, "Content-Type", binaryV2)
		if r.Status != 404 || r.ErrorCode() != 40402 {
			t.Errorf("record for a missing partition: %d %s", r.Status, r.Body)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		topic := testkit.Topic(t, "meta")
		produce(t, app.REST+"/topics/"+topic, binaryV2, `{"records":[{"value":"YQ=="}]}`)
		r := testkit.Do(t, "GET", app.REST+"/topics", "")
		var topics []string
		_ = json.Unmarshal(r.Body, &topics)
		found := false
		for _, x := range topics {
			found = found || x == topic
		}
		if r.Status != 200 || !found {
			t.Errorf("GET /topics: %d, %s missing", r.Status, topic)
		}
		r = testkit.Do(t, "GET", app.REST+"/topics/"+topic, "")
		var info struct {
			Name       string            `json:"name"`
			Configs    map[string]string `json:"configs"`
			Partitions []struct {
				Partition int `json:"partition"`
				Leader    int `json:"leader"`
				Replicas  []struct {
					Broker int  `json:"broker"`
					Leader bool `json:"leader"`
					InSync bool `json:"in_sync"`
				} `json:"replicas"`
			} `json:"partitions"`
		}
		if err := json.Unmarshal(r.Body, &info); err != nil || r.Status != 200 {
			t.Fatalf("GET /topics/%s: %d %s", topic, r.Status, r.Body)
		}
		if info.Name != topic || len(info.Partitions) != 4 || info.Configs["cleanup.policy"] != "delete" ||
			len(info.Partitions[0].Replicas) != 1 || !info.Partitions[0].Replicas[0].Leader || !info.Partitions[0].Replicas[0].InSync {
			t.Errorf("topic metadata: %s", r.Body)
		}
		if r := testkit.Do(t, "GET", app.REST+"/topics/"+topic+"/partitions", ""); r.Status != 200 || !strings.HasPrefix(string(r.Body), `[{"partition":0`) {
			t.Errorf("partitions: %d %s", r.Status, r.Body)
		}
		if r := testkit.Do(t, "GET", app.REST+"/topics/"+topic+"/partitions/3", ""); r.Status != 200 || !strings.HasPrefix(string(r.Body), `{"partition":3`) {
			t.Errorf("partition 3: %d %s", r.Status, r.Body)
		}
		if r := testkit.Do(t, "GET", app.REST+"/topics/"+topic+"/partitions/4", ""); r.Status != 404 || r.ErrorCode() != 40402 {
			t.Errorf("partition 4: %d %s", r.Status, r.Body)
		}
		if r := testkit.Do(t, "GET", app.REST+"/topics/no-such-topic-here", ""); r.Status != 404 || r.ErrorCode() != 40401 {
			t.Errorf("unknown topic: %d %s", r.Status, r.Body)
		}
		if r := testkit.Do(t, "GET", app.REST+"/brokers", ""); r.Status != 200 || string(r.Body) != `{"brokers":[1]}` {
			t.Errorf("brokers: %d %s", r.Status, r.Body)
		}
	})

	t.Run("content negotiation", func(t *testing.T) {
		topic := testkit.Topic(t, "ct")
		// Karapace's test_content_types lists, for the binary embedded format.
		valid := []string{"application/vnd.kafka.v1+json", "application/vnd.kafka.binary.v1+json", "application/vnd.kafka.binary.v2+json",
			"application/vnd.kafka+json", "application/json", "application/octet-stream", "application/vnd.kafka.v2+json"}
		for _, ct := range valid {
			if r := testkit.Do(t, "POST", app.REST+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`, "Content-Type", ct); r.Status != 200 {
				t.Errorf("content type %s: %d %s", ct, r.Status, r.Body)
			}
		}
		invalid := []string{"application/vnd.kafka.v3+json", "application/vnd.kafka.binary.v1+foo", "application/vnd.kafka.avro.v0+json",
			"application/vnd.kafka.json+avro", "application/vnd.kafka", "application/vnd.kafka+binary", "application/text", "bar/baz", ""}
		for _, ct := range invalid {
			r := testkit.Do(t, "POST", app.REST+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`, "Content-Type", ct)
			if r.Status != 415 || r.ErrorCode() != 415 || !strings.Contains(string(r.Body), "HTTP 415 Unsupported Media Type") {
				t.Errorf("content type %q: %d %s", ct, r.Status, r.Body)
			}
		}
		for _, acc := range []string{"application/vnd.kafka.v2+json", "application/vnd.kafka+json", "application/json", "application/*", "*/json", "*/*"} {
			if r := testkit.Do(t, "POST", app.REST+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`, "Content-Type", binaryV2, "Accept", acc); r.Status != 200 {
				t.Errorf("accept %s: %d %s", acc, r.Status, r.Body)
			}
		}
		for _, acc := range []string{"application/octet-stream", "application/vnd.kafka+foo", "application/text", "foo/*", "bar/json", "*/baz"} {
			if r := testkit.Do(t, "POST", app.REST+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`, "Content-Type", binaryV2, "Accept", acc); r.Status != 406 || r.ErrorCode() != 406 {
				t.Errorf("accept %s: %d %s", acc, r.Status, r.Body)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		topic := testkit.Topic(t, "errs")
		schema := `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`
		good := testkit.MustJSON(map[string]any{"value_schema": schema, "records": []any{map[string]any{"value": map[string]any{"name": "a"}}}})
		if r, _ := produce(t, app.REST+"/topics/"+topic, avroV2, good); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		before := testkit.EndOffsets(t, brokers, topic)
		cases := []struct {
			name   string
			ct     string
			body   string
			path   string
			status int
			code   int
		}{
			{"malformed JSON", avroV2, `{"records":[`, "", 400, 400},
			{"records not an array", binaryV2, `{"records":{"value":"YQ=="}}`, "", 422, 422},
			{"empty records", binaryV2, `{"records":[]}`, "", 422, 422},
			{"no records", binaryV2, `{}`, "", 422, 422},
			{"keys without key schema", avroV2, `{"value_schema":"\"int\"","records":[{"key":{"foo":"bar"},"value":1}]}`, "", 422, 42201},
			{"values without value schema", avroV2, `{"records":[{"value":{"foo":"bar"}}]}`, "", 422, 42202},
			{"invalid schema", avroV2, `{"value_schema":"{\"type\":\"recrod\"}","records":[{"value":1}]}`, "", 422, 42205},
			{"unwrapped union", avroV2, testkit.MustJSON(map[string]any{"value_schema": schema, "records": []any{
				map[string]any{"value": map[string]any{"name": "ok"}},
				map[string]any{"value": map[string]any{"name": "bob", "lastname": "smith"}}}}), "", 422, 42203},
			{"wrong type", avroV2, testkit.MustJSON(map[string]any{"value_schema": schema, "records": []any{map[string]any{"value": map[string]any{"name": 5}}}}), "", 422, 42203},
			{"unknown field", avroV2, testkit.MustJSON(map[string]any{"value_schema": schema, "records": []any{map[string]any{"value": map[string]any{"name": "x", "nmae": "y"}}}}), "", 422, 42203},
			{"unknown schema id", avroV2, `{"value_schema_id":987654,"records":[{"value":1}]}`, "", 408, 40801},
			{"incompatible schema", avroV2, `{"value_schema":"{\"type\":\"record\",\"name\":\"User\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"age\",\"type\":\"int\"}]}","records":[{"value":{"name":"x","age":1}}]}`, "", 408, 40801},
			{"invalid base64", binaryV2, `{"records":[{"value":"not base64!"}]}`, "", 422, 42203},
			{"negative partition", binaryV2, `{"records":[{"value":"YQ==","partition":-1}]}`, "", 422, 422},
			{"internal topic", binaryV2, `{"records":[{"value":"YQ=="}]}`, "/topics/_minipipe_schemas", 403, 40301},
			{"invalid topic name", binaryV2, `{"records":[{"value":"YQ=="}]}`, "/topics/a%2Fb", 422, 422},
			{"body too large", binaryV2, `{"records":[{"value":"` + base64.StdEncoding.EncodeToString(make([]byte, 9<<20)) + `"}]}`, "", 413, 413},
		}
		for _, c := range cases {
			path := c.path
			if path == "" {
				path = "/topics/" + topic
			}
			r := testkit.Do(t, "POST", app.REST+path, c.body, "Content-Type", c.ct)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Errorf("%s: %d %s, want %d/%d", c.name, r.Status, truncate(string(r.Body)), c.status, c.code)
			}
		}
		if after := testkit.EndOffsets(t, brokers, topic); after != before {
			t.Errorf("rejected requests wrote %d records", after-before)
		}
		if r := testkit.Do(t, "GET", app.REST+"/nowhere", ""); r.Status != 404 || r.ErrorCode() != 404 {
			t.Errorf("unknown path: %d %s", r.Status, r.Body)
		}
		if r := testkit.Do(t, "DELETE", app.REST+"/topics", ""); r.Status != 405 || r.ErrorCode() != 405 {
			t.Errorf("wrong method: %d %s", r.Status, r.Body)
		}
		if r, _ := produce(t, app.REST+"/topics/"+topic, avroV2, good); r.Status != 200 {
			t.Errorf("the edge must keep serving after bad requests: %d %s", r.Status, r.Body)
		}
	})

	t.Run("auto-create off", func(t *testing.T) {
		cfg := testkit.TestConfig(t, brokers)
		cfg.AutoCreateTopics = false
		strict := testkit.StartApp(t, cfg)
		topic := testkit.Topic(t, "nocreate")
		r := testkit.Do(t, "POST", strict.REST+"/topics/"+topic, `{"records":[{"value":"YQ=="}]}`, "Content-Type", binaryV2)
		if r.Status != 404 || r.ErrorCode() != 40401 {
			t.Errorf("missing topic without auto-create: %d %s", r.Status, r.Body)
		}
		if n := testkit.EndOffsets(t, brokers, topic); n != 0 {
			t.Errorf("topic %s exists with %d records", topic, n)
		}
		strict.Stop()
	})
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
