package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/dlq"
)

// Decoder turns a record value in Confluent's framing into Avro JSON, with the schema it names; it bounds
// the work a hostile value can cost (the console shows records validation refused).
type Decoder func(value []byte) (schemaID int, json []byte, err error)

// Letter is one dead letter, decoded as far as it goes.
type Letter struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Key       string            `json:"key,omitempty"`
	Code      string            `json:"code"`
	Reason    string            `json:"reason"`
	Source    string            `json:"source"` // topic/partition/offset it came from
	Headers   map[string]string `json:"headers"`
	Bytes     int               `json:"bytes"`
	SchemaID  int               `json:"schema_id,omitempty"`
	Decoded   string            `json:"decoded,omitempty"` // Avro JSON, or the value as text
	DecodeErr string            `json:"decode_error,omitempty"`
	Hex       string            `json:"hex,omitempty"` // the first bytes, when not decoded
	Redriven  *Redrive          `json:"redriven,omitempty"`
}

// DeadLetters is a dead-letter topic: how many records it holds per partition and the newest of them.
type DeadLetters struct {
	Topic   string           `json:"topic"`
	Source  string           `json:"source"`
	Records int64            `json:"records"`
	Reasons map[string]int64 `json:"reasons"` // by reason code, as validation counted them
	Letters []Letter         `json:"letters"`
}

const (
	sampleDefault = 50
	sampleMax     = 500
	showBytes     = 4 << 10 // of a value shown as text or hex
)

// kafkaSlot bounds the dead-letter reads and re-drives running at once (each reads partitions to their end),
// and how long one may take (waiting for its turn included). done ends both.
func (c *Console) kafkaSlot(ctx context.Context, limit time.Duration) (context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	select {
	case c.kafkaSem <- struct{}{}:
		return ctx, func() { <-c.kafkaSem; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, ctx.Err()
	}
}

func (c *Console) readDeadLetters(ctx context.Context, source string, n int) (*DeadLetters, error) {
	ctx, done, err := c.kafkaSlot(ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer done()
	topic := dlq.Topic(source)
	client := c.store.client
	if err := client.RefreshMetadata(topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return &DeadLetters{Topic: topic, Source: source, Reasons: map[string]int64{}, Letters: []Letter{}}, nil
		}
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	out := &DeadLetters{Topic: topic, Source: source, Reasons: map[string]int64{}, Letters: []Letter{}}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	per := max(1, n/len(parts))
	for _, p := range parts {
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		out.Records += end - start
		if end <= start {
			continue
		}
		from := max(start, end-int64(per))
		err = readRange(ctx, consumer, topic, p, from, end, func(m *sarama.ConsumerMessage) {
			out.Letters = append(out.Letters, c.letter(m))
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out.Letters, func(i, j int) bool { return out.Letters[i].Timestamp.After(out.Letters[j].Timestamp) })
	if snap, err := c.snaps.get(ctx); err == nil {
		for _, t := range snap.Topics {
			if t.Name == source {
				for k, v := range t.Rejected {
					out.Reasons[k] = v
				}
			}
		}
	}
	return out, nil
}

// readRange reads [from, end) of a partition; records compacted or deleted away are skipped.
func readRange(ctx context.Context, consumer sarama.Consumer, topic string, p int32, from, end int64, fn func(*sarama.ConsumerMessage)) error {
	pc, err := consumer.ConsumePartition(topic, p, from)
	if err != nil {
		return fmt.Errorf("reading %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	for {
		select {
		case m := <-pc.Messages():
			if m.Offset >= end {
				return nil
			}
			fn(m)
			if m.Offset >= end-1 {
				return nil
			}
		case err := <-pc.Errors():
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		case <-ctx.Done():
			return fmt.Errorf("reading %s/%d: %w", topic, p, ctx.Err())
		}
	}
}

func (c *Console) letter(m *sarama.ConsumerMessage) Letter {
	l := Letter{Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp.UTC(), Headers: map[string]string{}, Bytes: len(m.Value)}
	if m.Key != nil {
		l.Key = printable(m.Key)
	}
	for _, h := range m.Headers {
		if h == nil {
			continue
		}
		k, v := string(h.Key), printable(h.Value)
		l.Headers[k] = v
		switch k {
		case dlq.HeaderCode:
			l.Code = v
		case dlq.HeaderReason:
			l.Reason = v
		}
	}
	l.Source = l.Headers[dlq.HeaderSourceTopic] + "/" + l.Headers[dlq.HeaderSourcePartition] + "/" + l.Headers[dlq.HeaderSourceOffset]
	if r, ok, err := c.store.Redriven(m.Topic, m.Partition, m.Offset); err == nil && ok {
		l.Redriven = &r
	}
	switch {
	case m.Value == nil:
		l.DecodeErr = "no value (a tombstone, or a value too large for the dead-letter topic)"
	case c.decode != nil && len(m.Value) > 5 && m.Value[0] == 0:
		id, js, err := c.decode(m.Value)
		l.SchemaID = id
		if err == nil {
			l.Decoded = cut(string(js))
			return l
		}
		l.DecodeErr = err.Error()
		l.Hex = hexPrefix(m.Value)
	case utf8.Valid(m.Value):
		l.Decoded = cut(string(m.Value))
		l.DecodeErr = "not in Confluent's framing (magic byte 0, schema id): shown as text"
	default:
		l.DecodeErr = "not in Confluent's framing (magic byte 0, schema id)"
		l.Hex = hexPrefix(m.Value)
	}
	return l
}

func printable(b []byte) string {
	if utf8.Valid(b) {
		return cut(string(b))
	}
	return "0x" + hexPrefix(b)
}

func cut(s string) string {
	if len(s) > showBytes {
		return s[:showBytes] + "…"
	}
	return s
}

func hexPrefix(b []byte) string {
	if len(b) > 256 {
		return hex.EncodeToString(b[:256]) + "…"
	}
	return hex.EncodeToString(b)
}

// RegistryDecoder decodes values with the schemas a registry holds, after checking (bounded) that the value
// is well formed for its schema.
func RegistryDecoder(parsed func(id int) (*avro.Schema, *avro.Codec, error)) Decoder {
	return func(value []byte) (int, []byte, error) {
		id, payload, err := avro.ParseWire(value)
		if err != nil {
			return 0, nil, err
		}
		s, codec, err := parsed(id)
		if err != nil {
			return id, nil, fmt.Errorf("schema id %d: %w", id, err)
		}
		if err := avro.Validate(s, payload); err != nil {
			return id, nil, fmt.Errorf("not valid for schema id %d: %w", id, err)
		}
		js, err := codec.JSONFromBinary(payload)
		if err != nil {
			return id, nil, fmt.Errorf("decoding with schema id %d: %w", id, err)
		}
		return id, js, nil
	}
}

// RedriveResult says what became of each dead letter asked for.
type RedriveResult struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Status    string `json:"status"` // redriven, already, missing, failed
	To        string `json:"to,omitempty"`
	ToOffset  int64  `json:"to_offset,omitempty"`
	Error     string `json:"error,omitempty"`
}

// redrive sends dead letters back to their source topic: key, value and timestamp as they were, with a
// header naming the dead letter and an idempotency key made from its coordinates, to the partition the
// REST edge would pick for that key (the record's own key when it has one). The ingest stage drops a second
// copy of the same dead letter within --idempotency-window, whatever raced (two clicks, two instances, a
// re-drive sent but not recorded); the console topic records each one, so the page shows it done and a
// later request is answered "already".
func (c *Console) redrive(ctx context.Context, source string, which []Coord, by string) ([]RedriveResult, error) {
	ctx, done, err := c.kafkaSlot(ctx, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	defer done()
	topic := dlq.Topic(source)
	client := c.store.client
	if err := client.RefreshMetadata(topic, source); err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(source)
	if err != nil || len(parts) == 0 {
		return nil, fmt.Errorf("partitions of %s: %v", source, err)
	}
	out := make([]RedriveResult, 0, len(which))
	for _, w := range which {
		res := c.redriveOne(ctx, client, consumer, topic, source, int32(len(parts)), w, by)
		if res.Status == "redriven" {
			c.metrics.redriven.WithLabelValues(source).Inc()
		}
		out = append(out, res)
	}
	return out, nil
}

func (c *Console) redriveOne(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic, source string, partitions int32, w Coord, by string) RedriveResult {
	res := RedriveResult{Partition: w.Partition, Offset: w.Offset}
	failed := func(format string, args ...any) RedriveResult {
		res.Status, res.Error = "failed", fmt.Sprintf(format, args...)
		return res
	}
	key := redriveKey(topic, w.Partition, w.Offset)
	if _, busy := c.redriving.LoadOrStore(key, true); busy {
		res.Status = "in progress"
		return res
	}
	defer c.redriving.Delete(key)
	if r, ok, err := c.store.Redriven(topic, w.Partition, w.Offset); err != nil {
		return failed("%v", err)
	} else if ok {
		res.Status, res.To, res.ToOffset = "already", r.To, r.ToOffset
		return res
	}
	oldest, err1 := client.GetOffset(topic, w.Partition, sarama.OffsetOldest)
	newest, err2 := client.GetOffset(topic, w.Partition, sarama.OffsetNewest)
	if err := errors.Join(err1, err2); err != nil {
		return failed("%v", err)
	}
	if w.Offset < oldest || w.Offset >= newest {
		res.Status = "missing"
		res.Error = fmt.Sprintf("%s/%d holds offsets %d to %d", topic, w.Partition, oldest, newest-1)
		return res
	}
	var msg *sarama.ConsumerMessage
	if err := readRange(ctx, consumer, topic, w.Partition, w.Offset, w.Offset+1, func(m *sarama.ConsumerMessage) {
		if m.Offset == w.Offset {
			msg = m
		}
	}); err != nil {
		return failed("%v", err)
	}
	if msg == nil {
		res.Status, res.Error = "missing", "compacted or deleted"
		return res
	}
	hdr := map[string]string{}
	for _, h := range msg.Headers {
		if h != nil {
			hdr[string(h.Key)] = string(h.Value)
		}
	}
	if to := hdr[dlq.HeaderSourceTopic]; to != source {
		return failed("the dead letter names source topic %q, not %q", to, source)
	}
	if msg.Value == nil || hdr[dlq.HeaderDroppedBytes] != "" {
		return failed("the dead letter kept no value (too large for the dead-letter topic): re-read it from %s partition %s offset %s",
			source, hdr[dlq.HeaderSourcePartition], hdr[dlq.HeaderSourceOffset])
	}
	idem := redriveIdempotencyKey(topic, w.Partition, w.Offset)
	out := &sarama.ProducerMessage{Topic: source, Value: sarama.ByteEncoder(msg.Value), Headers: []sarama.RecordHeader{
		{Key: []byte(kafka.HeaderIdempotencyKey), Value: []byte(idem)},
		{Key: []byte(kafka.HeaderIdempotencyIndex), Value: []byte("0")},
		{Key: []byte(HeaderRedrivenFrom), Value: []byte(topic + "/" + strconv.Itoa(int(w.Partition)) + "/" + strconv.FormatInt(w.Offset, 10))},
	}}
	if msg.Key != nil {
		out.Key = sarama.ByteEncoder(msg.Key)
		out.Partition = kafka.KeyPartition(msg.Key, partitions)
	} else {
		out.Partition = kafka.KeyPartition([]byte(idem), partitions) // as the edge places a keyless record by its key
	}
	if ms, err := strconv.ParseInt(hdr[dlq.HeaderSourceTimestamp], 10, 64); err == nil && ms > 0 {
		out.Timestamp = time.UnixMilli(ms) // the row keeps its own time (and its time partition)
	}
	p, off, err := c.store.send(out)
	if err != nil {
		return failed("%v", err)
	}
	r := Redrive{DLQ: topic, Partition: w.Partition, Offset: w.Offset, To: fmt.Sprintf("%s/%d", source, p), ToOffset: off, At: time.Now().UTC(), By: by}
	if err := c.store.markRedriven(ctx, r); err != nil {
		// Sent: a retry sends it again, and the ingest stage drops that copy by its idempotency key.
		return failed("sent to %s, but not recorded as re-driven: %v", r.To, err)
	}
	res.Status, res.To, res.ToOffset = "redriven", r.To, off
	return res
}

// redriveIdempotencyKey names a dead letter for the ingest stage's idempotency check.
func redriveIdempotencyKey(dlqTopic string, p int32, off int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", dlqTopic, p, off)))
	return "minipipe-redrive-" + hex.EncodeToString(sum[:16])
}

// HeaderRedrivenFrom names the dead letter a re-driven record came from.
const HeaderRedrivenFrom = "minipipe.redriven.from"

// Coord is one record of a partition.
type Coord struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}
