package topology_test

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// deadLetters reads a dead-letter topic to its end: source offset → error code, per source partition
// ("partition/offset").
func deadLetters(t *testing.T, brokers []string, topic string) map[string]string {
	t.Helper()
	n := int(testkit.EndOffsets(t, brokers, topic))
	out := map[string]string{}
	if n == 0 {
		return out
	}
	for _, m := range testkit.Consume(t, brokers, topic, n, 30*time.Second) {
		h := map[string]string{}
		for _, hd := range m.Headers {
			h[string(hd.Key)] = string(hd.Value)
		}
		out[h["minipipe.source.partition"]+"/"+h["minipipe.source.offset"]] = h["minipipe.error.code"]
	}
	return out
}

func setTopicConfig(t *testing.T, brokers []string, topic, key, value string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, (kafka.Config{ClientID: "minipipe-test"}).Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		key: {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &value}}, false); err != nil {
		t.Fatalf("setting %s of %s: %v", key, topic, err)
	}
}

// accountFor checks that every record of the topic is either one row of the table or one dead letter,
// and that every id is a row at most once.
func accountFor(t *testing.T, brokers []string, cfg topology.Config, topic string, produced int, timeout time.Duration) map[string]string {
	t.Helper()
	table := tableOf(topic)
	var rows, distinct int
	var dead map[string]string
	deadline := time.Now().Add(timeout)
	for {
		dead = deadLetters(t, brokers, topic+".dlq")
		var err error
		rows, distinct, err = testkit.CountDistinct(t, cfg.WarehouseURL(), table, "id")
		if err == nil && rows+len(dead) >= produced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d rows (%d distinct) and %d dead letters of %d records (%v)", timeout, rows, distinct, len(dead), produced, err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(cfg.RotateInterval + time.Second) // a duplicate gets every chance to show
	rows, distinct, _ = testkit.CountDistinct(t, cfg.WarehouseURL(), table, "id")
	dead = deadLetters(t, brokers, topic+".dlq")
	t.Logf("%d records: %d rows (%d distinct ids), %d dead letters", produced, rows, distinct, len(dead))
	if rows != distinct || rows+len(dead) != produced {
		t.Fatalf("rows %d, distinct ids %d, dead letters %d: they must add up to the %d records, each once", rows, distinct, len(dead), produced)
	}
	return dead
}

// TestRowsTopicTooSmall: the repartition topic takes less than a batch of rows (its max.message.bytes set
// low before minipipe starts, and lowered again while it runs). Batches are split to fit; a row too large
// for the topic even alone is a dead letter; no row is lost or written twice.
func TestRowsTopicTooSmall(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	rowsTopic := topology.Names{Pipeline: cfg.PipelineName}.RowsTopic()
	testkit.CreateTopic(t, brokers, rowsTopic, int32(cfg.RowsPartitions))
	setTopicConfig(t, brokers, rowsTopic, "max.message.bytes", "16384")
	setTopicConfig(t, brokers, rowsTopic, "retention.ms", strconv.FormatInt((8*24*time.Hour).Milliseconds(), 10))
	p := testkit.StartProcess(t, cfg)
	topic := testkit.Topic(t, "small")
	testkit.CreateTopic(t, brokers, topic, 2)
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)
	next := 0
	large := map[int]bool{}
	produce := func(n int) {
		var values [][]byte
		for i := 0; i < n; i++ {
			next++
			size := 50 + (next*37)%3000
			if next%97 == 0 {
				size = 20000 // larger than the topic takes, even alone
				large[next] = true
			}
			values = append(values, frame(t, id, eventSchema, fmt.Sprintf(`{"id":%d,"payload":"%s"}`, next, strings.Repeat("x", size))))
		}
		produceRaw(t, brokers, topic, values...)
	}
	produce(3000)
	time.Sleep(2 * time.Second)
	setTopicConfig(t, brokers, rowsTopic, "max.message.bytes", "6000") // lowered under a running pipeline
	produce(3000)
	dead := accountFor(t, brokers, cfg, topic, next, 2*time.Minute)
	tooLarge := 0
	for _, code := range dead {
		if code != "too-large" {
			t.Fatalf("a dead letter for %q: only too-large rows should be", code)
		}
		tooLarge++
	}
	if tooLarge < len(large) {
		t.Fatalf("%d too-large dead letters, %d records larger than the topic takes", tooLarge, len(large))
	}
	t.Logf("batches split %.0f times; metrics say %.0f too-large dead letters", p.Metric("minipipe_ingest_batch_splits_total"),
		p.Metric("minipipe_dlq_records_total", `reason="too-large"`))
	if p.Metric("minipipe_ingest_batch_splits_total") == 0 {
		t.Fatal("no batch was split")
	}
}

// TestRowsLeaderDownPastDeliveryTimeout: the broker (leader of every repartition partition) is away longer
// than the producer's delivery timeout while row batches are in flight; they fail, are sent again when it
// is back, and every record becomes one row.
func TestRowsLeaderDownPastDeliveryTimeout(t *testing.T) {
	broker := testkit.StartKafka(t)
	brokers := broker.Brokers()
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	cfg.DeliveryTimeout = 2 * time.Second
	topic := testkit.Topic(t, "leaderdown")
	testkit.CreateTopic(t, brokers, topic, 4)
	p := testkit.StartProcess(t, cfg)
	id := registerSchema(t, p.Registry, topic+"-value", eventSchema)
	gen := newLoadGen(t, brokers, topic, id)
	gen.produce(20000)
	if err := broker.Kill(); err != nil { // with rows still going through the pipeline
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // five delivery timeouts
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	gen.produce(5000)
	settle(t, brokers, cfg, topic, int(gen.produced.Load()), 3*time.Minute)
	t.Logf("row batches sent again: %.0f", p.Metric("minipipe_ingest_produce_retries_total"))
}

const poisonSchema = `{"type":"record","name":"P","fields":[{"name":"id","type":"long"},` +
	`{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":2}},` +
	`{"name":"flags","type":{"type":"array","items":"null"}}]}`

// TestPoisonAndBombs: among good records of a table, a decimal of 17 bytes (beyond any decimal(38)) and
// arrays of a billion nulls in a kilobyte. Over REST they are refused with Confluent's 422; produced with
// Confluent's framing they go to the dead-letter topic with their reason within milliseconds; the good rows
// land within seconds; memory stays small and no processor restarts.
func TestPoisonAndBombs(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	cfg.RotateInterval = time.Second
	p := testkit.StartProcess(t, cfg)
	topic := testkit.Topic(t, "poison")
	testkit.CreateTopic(t, brokers, topic, 2)
	id := registerSchema(t, p.Registry, topic+"-value", poisonSchema)

	// REST: the edge refuses them.
	bigDecimal := "\\u0001" + strings.Repeat("\\u0000", 16)
	for name, body := range map[string]string{
		"17-byte decimal":  fmt.Sprintf(`{"value_schema_id":%d,"records":[{"value":{"id":1,"amount":"%s","flags":[]}}]}`, id, bigDecimal),
		"2,000 nulls":      fmt.Sprintf(`{"value_schema_id":%d,"records":[{"value":{"id":1,"amount":"\u0001","flags":[%s]}}]}`, id, strings.TrimSuffix(strings.Repeat("null,", 2000), ",")),
		"10^38 as decimal": fmt.Sprintf(`{"value_schema_id":%d,"records":[{"value":{"id":1,"amount":"%s","flags":[]}}]}`, id, jsonBytes(new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil).Bytes())),
	} {
		r := testkit.Do(t, "POST", p.REST+"/topics/"+topic, body, "Content-Type", "application/vnd.kafka.avro.v2+json")
		if r.Status != 422 || r.ErrorCode() != 42203 {
			t.Fatalf("REST %s: %d %s", name, r.Status, r.Body)
		}
	}

	// Confluent framing straight to Kafka: dead letters.
	long := func(v int64) []byte { return binary.AppendVarint(nil, v) }
	header := avro.AppendWireHeader(nil, id)
	good := func(i int) []byte {
		return frame(t, id, poisonSchema, fmt.Sprintf(`{"id":%d,"amount":"\u0001\u0002","flags":[null,null]}`, i))
	}
	decimal17 := append(append(append([]byte{}, header...), long(100001)...), append(long(17), append([]byte{1}, make([]byte, 16)...)...)...)
	decimal17 = append(decimal17, 0)
	bomb := append(append([]byte{}, header...), long(100002)...)
	bomb = append(bomb, long(0)...) // amount: empty bytes
	for len(bomb) < 1000 {
		bomb = append(bomb, long(5_000_000)...) // 200 blocks of 5 million nulls: a billion in a kilobyte
	}
	bomb = append(bomb, 0)
	var values [][]byte
	n := 0
	for i := 0; i < 3000; i++ {
		values = append(values, good(i))
		n++
		if i%500 == 250 {
			values = append(values, decimal17, bomb)
			n += 2
		}
	}
	start := time.Now()
	produceRaw(t, brokers, topic, values...)
	dead := accountFor(t, brokers, cfg, topic, n, time.Minute)
	t.Logf("every record accounted for %s after it was produced", time.Since(start).Round(100*time.Millisecond))
	codes := map[string]int{}
	for _, c := range dead {
		codes[c]++
	}
	if codes["value-out-of-range"] != 6 || codes["too-many-items"] != 6 || len(dead) != 12 {
		t.Fatalf("dead letters by reason: %v", codes)
	}
	if rss := p.PeakRSS(); rss > 2<<30 {
		t.Fatalf("peak RSS %d MiB", rss>>20)
	} else {
		t.Logf("peak RSS %d MiB", rss>>20)
	}
	if r := p.Metric("minipipe_processor_restarts_total"); r != 0 {
		t.Fatalf("processors restarted %v times", r)
	}
}

// jsonBytes renders bytes as Avro's JSON encoding does: a string of code points U+0000–U+00FF.
func jsonBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "\\u%04x", c)
	}
	return sb.String()
}
