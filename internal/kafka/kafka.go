// Package kafka holds minipipe's Kafka plumbing: one place that builds sarama configurations (so that every
// producer, consumer and goka component speaks to the broker the same way), goka option sets that use them,
// the Java client's key partitioner, topic administration, and the in-process broker for --embedded-kafka.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// Config says how to reach the cluster.
type Config struct {
	Brokers  []string
	ClientID string
	// ReplicationFactor for topics minipipe creates; 0 picks min(3, number of brokers).
	ReplicationFactor int
	// Compression for produced batches: none, gzip, snappy, lz4 or zstd.
	Compression string
	// DeliveryTimeout bounds how long a produced record may wait for the broker before it fails (default 60s;
	// minipipe's own stages send it again).
	DeliveryTimeout time.Duration
	Logger          *slog.Logger
	// Security: TLS and SASL for every client.
	Security Security
}

// Sarama returns a fresh sarama configuration: goka's defaults (its copartitioning rebalance strategy),
// Kafka 4 protocol versions (negotiated down for older brokers), a producer that waits for all in-sync
// replicas and keeps one request in flight per broker, so that a retry never reorders a partition's
// records, and consumers that start from the oldest offset. Sarama's idempotent producer is left off: it
// can lose the first records produced to a fresh partition (IBM/sarama#3354); consumers downstream of
// minipipe's own producers drop duplicates by offset instead.
func (c Config) Sarama() *sarama.Config {
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.ClientID = c.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "minipipe"
	}
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Metadata.Retry.Max = 2
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Metadata.RefreshFrequency = time.Minute
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 30 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 60 * time.Second
	cfg.Net.WriteTimeout = 30 * time.Second

	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = false
	cfg.Net.MaxOpenRequests = 1 // keeps each partition in order across retries
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Flush.Frequency = 0
	cfg.Producer.Flush.Bytes = 0
	cfg.Producer.Flush.MaxMessages = 0
	cfg.Producer.MaxMessageBytes = 1 << 20
	cfg.Producer.Compression = compression(c.Compression)

	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second // the broker's minimum: a dead member is noticed fast
	cfg.Consumer.Group.Heartbeat.Interval = 2 * time.Second
	// 1 MiB per partition and fetch: side by side with 4 MiB on a 3M-record drain (four runs each, alternating)
	// the same rows/s (6.5 s and 6.6 s on average) and 600 MiB of peak memory instead of 990: sarama holds a
	// whole fetch response as parsed messages.
	cfg.Consumer.Fetch.Default = 1 << 20
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	c.Security.sarama(cfg)
	return cfg
}

func compression(s string) sarama.CompressionCodec {
	switch strings.ToLower(s) {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	default:
		return sarama.CompressionNone
	}
}

// ValidCompression reports whether s names a supported codec.
func ValidCompression(s string) bool {
	switch strings.ToLower(s) {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
		return true
	}
	return false
}

// TopicManagerConfig is goka's topic manager configuration with the replication factor resolved.
func (c Config) TopicManagerConfig(replication int) *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = replication
	tmc.Stream.Replication = replication
	tmc.Stream.Retention = 24 * time.Hour
	tmc.CreateTopicTimeout = 30 * time.Second
	return tmc
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Goka builds goka components that share this configuration. Each builder gets its own copy of the sarama
// configuration: goka's builders write into the one they are given.
type Goka struct {
	cfg         Config
	replication int
	storage     storage.Builder
}

// NewGoka prepares goka option sets; replication is the resolved factor for topics goka creates, and
// storage builds the local state stores.
func NewGoka(cfg Config, replication int, st storage.Builder) *Goka {
	return &Goka{cfg: cfg, replication: replication, storage: st}
}

// StorageBuilder is the builder of local state stores (nil: goka's default).
func (g *Goka) StorageBuilder() storage.Builder { return g.storage }

func (g *Goka) topicManager() goka.TopicManagerBuilder {
	return func(brokers []string) (goka.TopicManager, error) {
		return goka.NewTopicManager(brokers, g.cfg.Sarama(), g.cfg.TopicManagerConfig(g.replication))
	}
}

func (g *Goka) producer() goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		cfg := g.cfg.Sarama()
		cfg.ClientID = clientID
		cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(hasher)
		return goka.NewProducer(brokers, cfg)
	}
}

func (g *Goka) consumerGroup() goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cfg := g.cfg.Sarama()
		cfg.ClientID = clientID
		// A JoinGroup request waits at the coordinator until every member has rejoined, up to the rebalance
		// timeout; sarama reads its answer with the plain read timeout. Shorter than the rebalance timeout, a
		// slow rejoin (a member committing its revoked partitions' files) fails every other member's join
		// with an i/o timeout, they restart and leave, and the group rebalances again (sarama #2820). The
		// Java client waits the rebalance timeout plus 5 s for a join; so do the group's clients (theirs
		// only: elsewhere a hung broker is still noticed after 30 s).
		cfg.Net.ReadTimeout = cfg.Consumer.Group.Rebalance.Timeout + 5*time.Second
		return sarama.NewConsumerGroup(brokers, group, cfg)
	}
}

func (g *Goka) consumer() goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		cfg := g.cfg.Sarama()
		cfg.ClientID = clientID
		return sarama.NewConsumer(brokers, cfg)
	}
}

// ProcessorOptions configures a goka processor.
func (g *Goka) ProcessorOptions(extra ...goka.ProcessorOption) []goka.ProcessorOption {
	opts := []goka.ProcessorOption{
		goka.WithTopicManagerBuilder(g.topicManager()),
		goka.WithProducerBuilder(g.producer()),
		goka.WithConsumerGroupBuilder(g.consumerGroup()),
		goka.WithConsumerSaramaBuilder(g.consumer()),
		goka.WithLogger(gokaLogger{g.cfg.logger().With("component", "goka")}),
	}
	if g.storage != nil {
		opts = append(opts, goka.WithStorageBuilder(g.storage))
	}
	return append(opts, extra...)
}

// ViewOptions configures a goka view.
func (g *Goka) ViewOptions(extra ...goka.ViewOption) []goka.ViewOption {
	opts := []goka.ViewOption{
		goka.WithViewTopicManagerBuilder(g.topicManager()),
		goka.WithViewConsumerSaramaBuilder(g.consumer()),
		goka.WithViewLogger(gokaLogger{g.cfg.logger().With("component", "goka-view")}),
		goka.WithViewAutoReconnect(),
	}
	if g.storage != nil {
		opts = append(opts, goka.WithViewStorageBuilder(g.storage))
	}
	return append(opts, extra...)
}

// EmitterOptions configures a goka emitter.
func (g *Goka) EmitterOptions(extra ...goka.EmitterOption) []goka.EmitterOption {
	opts := []goka.EmitterOption{
		goka.WithEmitterTopicManagerBuilder(g.topicManager()),
		goka.WithEmitterProducerBuilder(g.producer()),
		goka.WithEmitterLogger(gokaLogger{g.cfg.logger().With("component", "goka-emitter")}),
	}
	return append(opts, extra...)
}

// TopicManager opens goka's topic manager with this configuration.
func (g *Goka) TopicManager() (goka.TopicManager, error) {
	return g.topicManager()(g.cfg.Brokers)
}

// gokaLogger sends goka's messages to slog at debug level: goka reports every partition state change.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(args ...interface{})   { g.l.Debug(fmt.Sprint(args...)) }
func (g gokaLogger) Println(args ...interface{}) { g.l.Debug(fmt.Sprint(args...)) }
func (g gokaLogger) Printf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 600 { // goka aggregates every error of a partition into one message
		msg = msg[:600] + "…"
	}
	if strings.Contains(strings.ToLower(msg), "error") {
		g.l.Warn(msg)
		return
	}
	g.l.Debug(msg)
}
func (g gokaLogger) Debugf(format string, args ...interface{}) {
	g.l.Debug(fmt.Sprintf(format, args...))
}

// ResolveReplication returns the configured replication factor, or min(3, live brokers).
func ResolveReplication(ctx context.Context, admin sarama.ClusterAdmin, configured int) (int, error) {
	if configured > 0 {
		return configured, nil
	}
	brokers, _, err := admin.DescribeCluster()
	if err != nil {
		return 0, fmt.Errorf("describe cluster: %w", err)
	}
	n := len(brokers)
	if n > 3 {
		n = 3
	}
	if n < 1 {
		n = 1
	}
	return n, nil
}

// IsUnknownTopic reports whether err says the topic (or partition) does not exist.
func IsUnknownTopic(err error) bool {
	return errors.Is(err, sarama.ErrUnknownTopicOrPartition)
}

// ClusterID returns the cluster's id (every metadata response carries it; asking about one topic, which
// need not exist yet, keeps the response small).
func ClusterID(client sarama.Client, topic string) (string, error) {
	b := client.LeastLoadedBroker()
	if b == nil {
		return "", sarama.ErrOutOfBrokers
	}
	if ok, _ := b.Connected(); !ok {
		if err := b.Open(client.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return "", err
		}
	}
	resp, err := b.GetMetadata(sarama.NewMetadataRequest(sarama.V4_0_0_0, []string{topic}))
	if err != nil {
		return "", err
	}
	if resp.ClusterID == nil || *resp.ClusterID == "" {
		return "", errors.New("the broker did not say which cluster it belongs to")
	}
	return *resp.ClusterID, nil
}

// TopicIDs returns the ids Kafka gave the topics (a recreated topic gets a new one) and the cluster id.
func TopicIDs(client sarama.Client, topics []string) (map[string]string, string, error) {
	b := client.LeastLoadedBroker()
	if b == nil {
		return nil, "", sarama.ErrOutOfBrokers
	}
	if ok, _ := b.Connected(); !ok {
		if err := b.Open(client.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return nil, "", err
		}
	}
	resp, err := b.GetMetadata(sarama.NewMetadataRequest(sarama.V4_0_0_0, topics))
	if err != nil {
		return nil, "", err
	}
	out := map[string]string{}
	for _, t := range resp.Topics {
		if t.Err != sarama.ErrNoError {
			return nil, "", fmt.Errorf("topic %s: %w", t.Name, t.Err)
		}
		out[t.Name] = t.Uuid.String()
	}
	cluster := ""
	if resp.ClusterID != nil {
		cluster = *resp.ClusterID
	}
	return out, cluster, nil
}
