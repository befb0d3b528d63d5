// Package dlq builds and produces dead letters: a record that cannot become a row goes to its source
// topic's dead-letter topic (<topic>.dlq) with the reason and its source coordinates in headers, from the
// ingest stage (validation) and from the commit stage (a row the writer still refuses) alike.
package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/kafka"
)

// Topic is the dead-letter topic of a source topic.
func Topic(source string) string { return source + ".dlq" }

// MaxBytes is the largest dead letter produced with its value: dead-letter topics are created (or raised)
// to take it, and the dead-letter producer's batches are this large at most.
const MaxBytes = 2 << 20

// Reasons the commit and ingest stages give beyond validation's (processors/validate).
const (
	// CodeUnwritable is a row the commit stage could not write although validation let it through.
	CodeUnwritable = "unwritable-row"
	// CodeTooLarge is a record too large for the repartition topic even alone.
	CodeTooLarge = "too-large"
)

// Headers of a dead letter.
const (
	HeaderCode            = "minipipe.error.code"
	HeaderReason          = "minipipe.error.reason"
	HeaderSourceTopic     = "minipipe.source.topic"
	HeaderSourcePartition = "minipipe.source.partition"
	HeaderSourceOffset    = "minipipe.source.offset"
	HeaderSourceTimestamp = "minipipe.source.timestamp"
	HeaderDroppedBytes    = "minipipe.value.dropped.bytes"
	HeaderDroppedSHA256   = "minipipe.value.dropped.sha256"
)

// Source is where a dead letter came from.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64 // milliseconds
	Key       string
}

// Record builds the dead letter of a source record: its key and value, the reason and its source in
// headers. The record's own time goes in a header: franz-go measures its delivery timeout from Timestamp.
func Record(src Source, value []byte, code, reason string) *kgo.Record {
	var k []byte
	if src.Key != "" {
		k = []byte(src.Key)
	}
	return &kgo.Record{Topic: Topic(src.Topic), Key: k, Value: value, Partition: -1, Headers: []kgo.RecordHeader{
		{Key: HeaderCode, Value: []byte(code)},
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		{Key: HeaderSourceTimestamp, Value: []byte(strconv.FormatInt(src.Timestamp, 10))},
	}}
}

// Produce produces a dead letter until it is in Kafka or ctx ends (then it returns an error, and the
// record is redone by whoever takes its partition). A dead letter refused as too large is tried again
// (it may have shared a batch with others) and then goes without its value, its size and checksum in
// headers: the record itself stays in its source topic.
func Produce(ctx context.Context, producer *kgo.Client, rec *kgo.Record, backoff time.Duration, log *slog.Logger) error {
	if backoff <= 0 {
		backoff = 250 * time.Millisecond
	}
	wait := backoff
	tooLarge := 0
	for attempt := 1; ; attempt++ {
		// The context cancels a record not yet sent; one sent is waited for.
		err := producer.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if kafka.IsTooLarge(err) {
			tooLarge++
			if rec.Value != nil && (tooLarge >= 3 || len(rec.Value)+len(rec.Key)+kafka.RecordOverhead > MaxBytes) {
				sum := sha256.Sum256(rec.Value)
				log.Warn("a dead letter is too large for its topic; sending it without its value", "topic", rec.Topic, "bytes", len(rec.Value), "error", err)
				rec.Headers = append(rec.Headers,
					kgo.RecordHeader{Key: HeaderDroppedBytes, Value: []byte(strconv.Itoa(len(rec.Value)))},
					kgo.RecordHeader{Key: HeaderDroppedSHA256, Value: []byte(hex.EncodeToString(sum[:]))})
				rec.Value = nil
				continue
			}
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("producing a dead letter failed; trying again", "topic", rec.Topic, "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("producing a dead letter to %s: %w", rec.Topic, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}
