package kafka

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer options for franz-go, which minipipe uses where records enter Kafka from outside (the REST
// edge): its idempotent producer is exact about sequence numbers on fresh partitions and retries, and its
// default partitioning is the Java client's.
func (c Config) ProducerOptions(clientID string) []kgo.Opt {
	codec := kgo.NoCompression()
	switch strings.ToLower(c.Compression) {
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	}
	return append([]kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(javaPartitioner{inner: kgo.StickyKeyPartitioner(nil)}),
		// No lingering: a request waits for its records' acknowledgement, and records that arrive while a
		// produce request is in flight are batched anyway.
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(c.deliveryTimeout()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(200_000),
		kgo.WithLogger(kgoLogger{c.logger().With("component", "kafka-producer")}),
	}, c.Security.kgo()...)
}

// javaPartitioner places records as Kafka's Java producer does: a record with Partition >= 0 goes there,
// a keyed record by murmur2 of its key, and the rest stick to a partition per batch. Callers set
// Partition to -1 to ask for automatic placement.
type javaPartitioner struct{ inner kgo.Partitioner }

func (p javaPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return &javaTopicPartitioner{inner: p.inner.ForTopic(t)}
}

type javaTopicPartitioner struct{ inner kgo.TopicPartitioner }

func (p *javaTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || p.inner.RequiresConsistency(r)
}

func (p *javaTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return p.inner.Partition(r, n)
}

func (p *javaTopicPartitioner) OnNewBatch() {
	if nb, ok := p.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, keyvals...)
	default:
		k.l.Debug(msg, keyvals...)
	}
}

// NewProducer opens a franz-go producer client.
func (c Config) NewProducer(clientID string, extra ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(c.ProducerOptions(clientID), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return cl, nil
}

func (c Config) deliveryTimeout() time.Duration {
	if c.DeliveryTimeout > 0 {
		return c.DeliveryTimeout
	}
	return 60 * time.Second
}
