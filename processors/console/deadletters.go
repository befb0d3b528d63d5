package console

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
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

func (c *Console) readDeadLetters(ctx context.Context, source string, n int) (*DeadLetters, error) {
	topic := dlq.Topic(source)
	client, err := sarama.NewClient(c.kcfg.Brokers, c.kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	defer client.Close()
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
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
			l.Decoded = string(js)
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

// redrive sends dead letters back to their source topic, key and value as they were, with a header naming
// the dead letter; each is recorded in the console topic, so a second click (on any instance) does not send
// it again.
func (c *Console) redrive(ctx context.Context, source string, which []Coord, by string) ([]RedriveResult, error) {
	topic := dlq.Topic(source)
	client, err := sarama.NewClient(c.kcfg.Brokers, c.kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	out := make([]RedriveResult, 0, len(which))
	for _, w := range which {
		res := RedriveResult{Partition: w.Partition, Offset: w.Offset}
		if r, ok, err := c.store.Redriven(topic, w.Partition, w.Offset); err != nil {
			return nil, err
		} else if ok {
			res.Status, res.To, res.ToOffset = "already", r.To, r.ToOffset
			out = append(out, res)
			continue
		}
		var msg *sarama.ConsumerMessage
		err := readRange(ctx, consumer, topic, w.Partition, w.Offset, w.Offset+1, func(m *sarama.ConsumerMessage) {
			if m.Offset == w.Offset {
				msg = m
			}
		})
		if err != nil || msg == nil {
			res.Status = "missing"
			if err != nil {
				res.Error = err.Error()
			}
			out = append(out, res)
			continue
		}
		to := source
		for _, h := range msg.Headers {
			if h != nil && string(h.Key) == dlq.HeaderSourceTopic && len(h.Value) > 0 {
				to = string(h.Value)
			}
		}
		if to != source {
			res.Status, res.Error = "failed", fmt.Sprintf("the dead letter names source topic %q, not %q", to, source)
			out = append(out, res)
			continue
		}
		rec := &kgo.Record{Topic: to, Key: msg.Key, Value: msg.Value, Partition: -1,
			Headers: []kgo.RecordHeader{{Key: HeaderRedrivenFrom, Value: []byte(topic + "/" + strconv.Itoa(int(w.Partition)) + "/" + strconv.FormatInt(w.Offset, 10))}}}
		if err := c.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
			res.Status, res.Error = "failed", err.Error()
			out = append(out, res)
			continue
		}
		r := Redrive{DLQ: topic, Partition: w.Partition, Offset: w.Offset, To: to, ToOffset: rec.Offset, At: time.Now().UTC(), By: by}
		if err := c.store.markRedriven(ctx, r); err != nil {
			res.Status, res.Error = "failed", "sent to "+to+", but not recorded as re-driven: "+err.Error()
			out = append(out, res)
			continue
		}
		c.metrics.redriven.WithLabelValues(source).Inc()
		res.Status, res.To, res.ToOffset = "redriven", to, rec.Offset
		out = append(out, res)
	}
	return out, nil
}

// HeaderRedrivenFrom names the dead letter a re-driven record came from.
const HeaderRedrivenFrom = "minipipe.redriven.from"

// Coord is one record of a partition.
type Coord struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}
