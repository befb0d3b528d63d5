package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/benchdata"
	"github.com/minipipe/minipipe/internal/kafka"
)

// The pipeline scenarios: "load" registers the benchmark schema and fills a topic with records as a
// Confluent producer would; "drain" waits until minipipe has committed them all and reports the
// topic → committed Parquet rate from minipipe's own metrics.

const pipelineSchema = `{"type":"record","name":"Click","namespace":"bench","fields":[` +
	`{"name":"id","type":"long"},{"name":"user","type":"string"},{"name":"url","type":"string"},` +
	`{"name":"ms","type":"int"},{"name":"ok","type":"boolean"}]}`

// spreadSchema is pipelineSchema with a time field, for records spread over several days (and so over
// several table partitions, the commit stage's unit of parallelism): --timestamp-field ts.
const spreadSchema = `{"type":"record","name":"Click","namespace":"bench","fields":[` +
	`{"name":"id","type":"long"},{"name":"user","type":"string"},{"name":"url","type":"string"},` +
	`{"name":"ms","type":"int"},{"name":"ok","type":"boolean"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

func load(brokers []string, registry, topic string, n, days int, wide bool) error {
	schema := pipelineSchema
	if days > 0 {
		schema = spreadSchema
	}
	if wide {
		schema = benchdata.WideSchema
	}
	body, _ := json.Marshal(map[string]string{"schema": schema})
	resp, err := http.Post(registry+"/subjects/"+topic+"-value/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	var reg struct {
		ID int `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &reg); err != nil || reg.ID == 0 {
		return fmt.Errorf("registering the schema: %s", b)
	}
	kc := kafka.Config{Brokers: brokers}
	if admin, err := sarama.NewClusterAdmin(brokers, kc.Sarama()); err == nil {
		_ = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
		admin.Close()
	}
	s, _ := avro.Parse(schema)
	codec, _ := avro.NewCodec(s)
	cl, err := (kafka.Config{Brokers: brokers, Compression: "lz4"}).NewProducer("minipipe-bench", kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	var bytesOut int64
	errs := make(chan error, 1)
	ctx := context.Background()
	for i := 0; i < n; i++ {
		datum := fmt.Sprintf(`{"id":%d,"user":"user-%05d","url":"/page/%d","ms":%d,"ok":%t}`, i, i%10000, i%500, i%1000, i%7 != 0)
		if days > 0 {
			ts := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, i%days).UnixMilli()
			datum = fmt.Sprintf(`{"id":%d,"user":"user-%05d","url":"/page/%d","ms":%d,"ok":%t,"ts":%d}`, i, i%10000, i%500, i%1000, i%7 != 0, ts)
		}
		if wide {
			datum = benchdata.WideDatum(i)
		}
		v, err := codec.AppendBinaryFromJSON(avro.AppendWireHeader(nil, reg.ID), []byte(datum))
		if err != nil {
			return err
		}
		bytesOut += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: v, Partition: -1}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("loaded %d records (%.1f MB of Avro, %d bytes each on average) into %s in %.1fs\n", n, float64(bytesOut)/1e6, bytesOut/int64(n), topic, secs)
	return nil
}

// endOffsets sums a topic's end offsets (its record count when it was never truncated).
func endOffsets(brokers []string, topic string) (int64, error) {
	c, err := sarama.NewClient(brokers, kafka.Config{Brokers: brokers}.Sarama())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		o, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		n += o
	}
	return n, nil
}

// rawRead reads a topic from its start to its end with franz-go alone (nothing decoded): the ceiling any
// consumer of this broker on this machine works under. It prints records/s and MB/s of record values.
func rawRead(brokers []string, topic, label string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	want, err := endOffsets(brokers, topic)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	var n, bytes int64
	var start time.Time
	for n < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("raw read of %s: %d of %d records: %w", topic, n, want, err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Value))
		})
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("| %s | %d | %.1f | %.0f | %.1f |\n", label, n, secs, float64(n)/secs, float64(bytes)/secs/1e6)
	return nil
}

// metric reads one counter from minipipe's /metrics.
func metric(httpBase, name string) (float64, error) {
	resp, err := http.Get(httpBase + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
		}
	}
	return 0, sc.Err()
}

// sum reads a counter from every instance and adds them up; each is the per-instance values.
func sum(bases []string, name string) (total float64, each []float64, err error) {
	for _, b := range bases {
		v, err := metric(b, name)
		if err != nil {
			return 0, nil, err
		}
		total += v
		each = append(each, v)
	}
	return total, each, nil
}

// drain waits until n rows are committed (by all the instances whose metrics addresses are given) and prints
// the rate from the first record read (by an ingest stage) to the last row committed.
func drain(httpBases []string, n int, timeout time.Duration, label string, inputBytes int64) error {
	deadline := time.Now().Add(timeout)
	var first time.Time
	var baseRows, baseBytes, baseFiles float64
	var baseEach []float64
	base := true
	lastOK := time.Now()
	for time.Now().Before(deadline) {
		rows, each, err := sum(httpBases, "minipipe_commit_rows_total")
		if err != nil {
			if time.Since(lastOK) > 30*time.Second {
				return fmt.Errorf("%s: minipipe's metrics unreachable for 30s (did it exit? see its log): %w", label, err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		lastOK = time.Now()
		if base {
			baseRows, baseEach = rows, each
			baseBytes, _, _ = sum(httpBases, "minipipe_commit_bytes_total")
			baseFiles, _, _ = sum(httpBases, "minipipe_commit_files_total")
			base = false
		}
		if first.IsZero() {
			if in, _, _ := sum(httpBases, "minipipe_ingest_records_total"); in > 0 || rows > baseRows {
				first = time.Now()
			}
		}
		if rows-baseRows >= float64(n) {
			secs := time.Since(first).Seconds()
			bytes, _, _ := sum(httpBases, "minipipe_commit_bytes_total")
			files, _, _ := sum(httpBases, "minipipe_commit_files_total")
			per := ""
			if len(httpBases) > 1 {
				var parts []string
				for i := range each {
					parts = append(parts, fmt.Sprintf("%.0f", (each[i]-baseEach[i])/secs))
				}
				per = " (" + strings.Join(parts, " + ") + ")"
			}
			in := ""
			if inputBytes > 0 {
				in = fmt.Sprintf(" %.1f |", float64(inputBytes)/secs/1e6)
			}
			fmt.Printf("| %s | %d | %.1f | %.0f%s | %.1f | %.0f |%s\n", label, n, secs, float64(n)/secs, per, (bytes-baseBytes)/secs/1e6, files-baseFiles, in)
			// A clean run redoes nothing: a dropped duplicate would mean rows reached the commit stage out of order.
			if dups, _, _ := sum(httpBases, "minipipe_commit_duplicates_dropped_total"); dups > 0 {
				return fmt.Errorf("%s: %.0f rows dropped as duplicates in a run without crashes", label, dups)
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: not all %d rows committed within %v", label, n, timeout)
}

func pipelineMain(args []string) {
	mode := args[0]
	fs := newFlags(mode)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka brokers")
	registry := fs.String("registry", "http://127.0.0.1:8081", "schema registry")
	httpBase := fs.String("http", "http://127.0.0.1:8080", "minipipe's metrics address (comma-separated: several instances, summed)")
	days := fs.Int("spread-days", 0, "load: records spread over this many days, with a ts field (--timestamp-field ts)")
	wide := fs.Bool("wide", false, "load: records of ~1.1 KB in 30 fields instead of 5 small ones")
	inputBytes := fs.Int64("input-bytes", 0, "drain: the topic's bytes of Avro, to print MB/s of input")
	topic := fs.String("topic", "bench-pipeline", "topic")
	n := fs.Int("records", 2_000_000, "records")
	label := fs.String("label", "topic → committed Parquet", "row label")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	_ = fs.Parse(args[1:])
	var err error
	switch mode {
	case "load":
		err = load(strings.Split(*brokers, ","), *registry, *topic, *n, *days, *wide)
	case "drain":
		err = drain(strings.Split(*httpBase, ","), *n, *timeout, *label, *inputBytes)
	case "rawread":
		err = rawRead(strings.Split(*brokers, ","), *topic, *label)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, mode+":", err)
		os.Exit(1)
	}
}
