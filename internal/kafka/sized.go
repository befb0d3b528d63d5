package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RecordOverhead is room left in a batch for one record's framing (lengths, attributes, headers' counts)
// and the batch header, on top of its key and value.
const RecordOverhead = 128

// SizedProducer produces to one topic in batches never larger than the topic takes (its max.message.bytes):
// franz-go gathers records of a partition into one batch up to ProducerBatchMaxBytes, and a batch the
// broker refuses fails every record in it, however small each is. When the topic's limit changes, the
// client is replaced by one sized to the new limit, after everything sent through the old one has
// finished, so that records of one partition never travel through two clients at once (which could
// reorder them).
type SizedProducer struct {
	cfg   Config
	id    string
	topic string
	admin sarama.ClusterAdmin
	extra []kgo.Opt

	mu    sync.RWMutex
	cl    *kgo.Client
	limit int

	refreshMu   sync.Mutex
	refreshedAt time.Time
}

// NewSizedProducer opens a producer for topic sized to its current max.message.bytes.
func (c Config) NewSizedProducer(clientID, topic string, admin sarama.ClusterAdmin, extra ...kgo.Opt) (*SizedProducer, error) {
	p := &SizedProducer{cfg: c, id: clientID, topic: topic, admin: admin, extra: extra}
	limit, err := TopicMaxMessageBytes(admin, topic)
	if err != nil {
		return nil, err
	}
	if p.cl, err = p.open(limit); err != nil {
		return nil, err
	}
	p.limit = limit
	p.refreshedAt = time.Now()
	return p, nil
}

func (p *SizedProducer) open(limit int) (*kgo.Client, error) {
	opts := append(append([]kgo.Opt{}, p.extra...), kgo.ProducerBatchMaxBytes(int32(limit)))
	return p.cfg.NewProducer(p.id, opts...)
}

// Produce hands a record to the current client.
func (p *SizedProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.RLock()
	cl := p.cl
	cl.Produce(ctx, r, promise)
	p.mu.RUnlock()
}

// MaxBytes is the topic's limit as last read: the largest batch (and so the largest record) it takes.
func (p *SizedProducer) MaxBytes() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.limit
}

// Refresh reads the topic's limit again (at most once a second) and, when it changed, replaces the client.
// It must not be called from a produce promise: it waits for the old client's records to finish. ctx bounds
// reading the limit.
func (p *SizedProducer) Refresh(ctx context.Context) (int, error) {
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if time.Since(p.refreshedAt) < time.Second {
		return p.MaxBytes(), nil
	}
	limit, err := TopicMaxMessageBytes(p.admin, p.topic)
	if err != nil {
		return p.MaxBytes(), err
	}
	p.refreshedAt = time.Now()
	if limit == p.MaxBytes() {
		return limit, nil
	}
	cl, err := p.open(limit)
	if err != nil {
		return p.MaxBytes(), err
	}
	p.mu.Lock()
	old := p.cl
	// Nothing more goes through the old client; what it holds finishes (lands, or fails by the delivery
	// timeout) before any record is handed to the new one: records of one partition never travel through two
	// clients at once. Promises must not wait for anything Produce's callers hold (the ingest stage's only
	// queue their outcome), or this would never end.
	_ = old.Flush(context.Background())
	p.cl, p.limit = cl, limit
	p.mu.Unlock()
	old.Close()
	return limit, nil
}

// Flush waits for every record handed over so far.
func (p *SizedProducer) Flush(ctx context.Context) error {
	p.mu.RLock()
	cl := p.cl
	p.mu.RUnlock()
	return cl.Flush(ctx)
}

// Close closes the client.
func (p *SizedProducer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cl.Close()
}

// TopicMaxMessageBytes reads a topic's max.message.bytes (the broker's default when the topic sets none).
func TopicMaxMessageBytes(admin sarama.ClusterAdmin, topic string) (int, error) {
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"max.message.bytes"}})
	if err != nil {
		return 0, fmt.Errorf("reading max.message.bytes of %s: %w", topic, err)
	}
	for _, e := range entries {
		if e.Name == "max.message.bytes" {
			n, err := strconv.Atoi(e.Value)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("max.message.bytes of %s is %q", topic, e.Value)
			}
			return n, nil
		}
	}
	return 1048588, nil // Kafka's default
}

// IsTooLarge reports whether a produce failed because the record (or the batch it was in) was larger than
// the topic or the client takes.
func IsTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}
