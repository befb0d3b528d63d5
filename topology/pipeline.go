package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/internal/supervise"
	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/processors/dlq"
	"github.com/minipipe/minipipe/processors/ingest"
	"github.com/minipipe/minipipe/processors/registry"
	"github.com/minipipe/minipipe/processors/validate"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/parquet"
	"github.com/minipipe/minipipe/state"
)

// Names are the topology's own topics and consumer groups, derived from --pipeline-name: instances with
// the same name share the work, pipelines with different names on one cluster do not meet.
type Names struct{ Pipeline string }

// RowsTopic is the repartition topic.
func (n Names) RowsTopic() string { return "_" + n.Pipeline + "_rows" }

// CommitGroup is the commit stage's consumer group.
func (n Names) CommitGroup() string { return "_" + n.Pipeline + "_commit" }

// IngestGroup is the consumer group of a topic's ingest processor for a table generation.
func (n Names) IngestGroup(topic string, gen int) string {
	g := "_" + n.Pipeline + "_ingest." + topic
	if gen > 1 {
		g += ".g" + strconv.Itoa(gen)
	}
	return g
}

// Pipeline runs the topology: one ingest processor per source topic (started as topics appear) and the
// commit processor, each supervised: a processor that fails is rebuilt and restarted with backoff, and
// redoes whatever it had not acknowledged.
type Pipeline struct {
	cfg      Config
	log      *slog.Logger
	kcfg     kafka.Config
	gk       *kafka.Goka
	reg      *registry.Registry
	wh       fs.FS
	catalog  *TableRules
	names    Names
	metrics  prometheus.Registerer
	instance string
	cluster  string // the Kafka cluster id
	monitor  *supervise.Monitor
	lag      *lagCollector

	client    sarama.Client
	admin     sarama.ClusterAdmin
	producer  *kgo.Client // seal markers and dead letters
	rows      *kafka.SizedProducer
	committer *commit.Committer
	ingestM   *ingest.Metrics

	tables *state.Tables // the stores of the ingest processors' group tables

	mu      sync.Mutex
	running map[string]*runningIngest   // by topic@generation
	graphs  map[string]*goka.GroupGraph // the goka graphs running, by group
	wg      sync.WaitGroup
}

type runningIngest struct {
	table   layout.Table
	gen     int
	topicID string
	cancel  context.CancelFunc
	done    chan struct{}
	in      *ingest.Ingest
}

// NewPipeline connects the pipeline's clients.
func NewPipeline(cfg Config, log *slog.Logger, kcfg kafka.Config, gk *kafka.Goka, reg *registry.Registry, wh fs.FS, metrics prometheus.Registerer, mon *supervise.Monitor) (*Pipeline, error) {
	catalog, err := NewTableRules(cfg)
	if err != nil {
		return nil, err
	}
	idb := make([]byte, 4)
	_, _ = rand.Read(idb)
	host, _ := os.Hostname()
	p := &Pipeline{cfg: cfg, log: log.With("component", "pipeline"), kcfg: kcfg, gk: gk, reg: reg, wh: wh, catalog: catalog, names: Names{cfg.PipelineName},
		metrics: metrics, monitor: mon, instance: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(idb)), running: map[string]*runningIngest{},
		graphs: map[string]*goka.GroupGraph{}, tables: state.NewTables(gk.StorageBuilder())}
	p.client, err = sarama.NewClient(kcfg.Brokers, kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("pipeline: kafka client: %w", err)
	}
	p.admin, err = sarama.NewClusterAdminFromClient(p.client)
	if err != nil {
		return nil, fmt.Errorf("pipeline: kafka admin: %w", err)
	}
	p.producer, err = kcfg.NewProducer("minipipe-pipeline", kgo.ProducerLinger(2*time.Millisecond), kgo.ProducerBatchMaxBytes(dlq.MaxBytes))
	if err != nil {
		return nil, err
	}
	p.ingestM = ingest.NewMetrics(metrics)
	p.lag = newLagCollector()
	if metrics != nil {
		metrics.MustRegister(p.lag)
	}
	return p, nil
}

// schemas adapts the registry to what the processors need.
type schemas struct{ reg *registry.Registry }

func (s schemas) Schema(id int) (*avro.Schema, error) {
	sch, _, err := s.reg.Store().Parsed(id)
	if registry.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %d", validate.ErrUnknownSchema, id)
	}
	return sch, err
}

func (s schemas) SubjectSchemaIDs(subject string) ([]int, error) {
	vs, err := s.reg.Store().Versions(subject)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, v := range vs {
		if !v.Deleted {
			ids = append(ids, v.ID)
		}
	}
	return ids, nil
}

func (s schemas) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.reg.Sync(ctx)
}

// Run runs the pipeline until ctx ends.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.shutdown()
	if err := p.ensureRowsTopic(); err != nil {
		return err
	}
	if err := p.checkIdentity(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if _, err := parquet.Codec(p.cfg.ParquetCompression); err != nil {
		return err
	}
	rows, err := p.kcfg.NewSizedProducer("minipipe-rows", p.names.RowsTopic(), p.admin, kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return fmt.Errorf("repartition topic %s: %w", p.names.RowsTopic(), err)
	}
	p.rows = rows
	ms, err := newMetastore(p.cfg, p.wh, p.log, p.catalog.Hidden)
	if err != nil {
		return err
	}
	var cat commit.Catalog
	if ms != nil {
		cat = ms
		defer ms.Close()
	}
	p.committer = commit.New(commit.Config{
		Catalog:   cat,
		Group:     p.names.CommitGroup(),
		RowsTopic: p.names.RowsTopic(),
		FS:        p.wh,
		Tables: func(name string) layout.Table {
			if t, ok := p.catalog.ByName(name); ok {
				return t
			}
			t, _, _ := p.catalog.ForTopic(name)
			t.Name = name
			return t
		},
		Schemas:         schemas{p.reg},
		Producer:        p.producer,
		Instance:        p.instance,
		Cluster:         p.claimCluster(),
		Pipeline:        p.cfg.PipelineName,
		Parquet:         parquet.Options{Compression: p.cfg.ParquetCompression, CompressionLevel: p.cfg.ParquetLevel},
		CompactEvery:    p.cfg.CheckpointEvery,
		AllowedLateness: p.cfg.AllowedLateness,
		WriteBudget:     p.cfg.writeBudget(),
		Failpoint:       failpoint(),
		Metrics:         commit.NewMetrics(p.metrics),
		Log:             p.log,
	})
	p.supervise(ctx, "commit", func() (*goka.Processor, error) {
		return goka.NewProcessor(p.kcfg.Brokers, p.graph(CommitProcessor(p.cfg).Graph(p.committer.Process)), p.gk.ProcessorOptions()...)
	}, nil)

	go p.watchLag(ctx, 10*time.Second)
	t := time.NewTicker(p.cfg.TopicRefresh)
	defer t.Stop()
	for {
		if err := p.discover(ctx); err != nil {
			p.log.Warn("looking for new topics", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RowsMaxMessageBytes is the max.message.bytes the repartition topic is created with: a source record of
// Kafka's default 1 MiB limit fits in a batch of its own.
const RowsMaxMessageBytes = 2 << 20

// ensureRowsTopic creates the repartition topic, or checks the one there. Its rows must outlive any wait
// for their commit (the ingest stage has acknowledged their source records already), so its retention is
// at least --rows-retention (a week by default), and minipipe refuses to start when it cannot make it so.
func (p *Pipeline) ensureRowsTopic() error {
	topic := p.names.RowsTopic()
	retention := strconv.FormatInt(p.cfg.RowsRetention.Milliseconds(), 10)
	maxBytes := strconv.Itoa(RowsMaxMessageBytes)
	replication, err := kafka.ResolveReplication(context.Background(), p.admin, p.cfg.ReplicationFactor)
	if err != nil {
		return err
	}
	err = p.admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(p.cfg.RowsPartitions), ReplicationFactor: int16(replication),
		ConfigEntries: map[string]*string{"retention.ms": &retention, "max.message.bytes": &maxBytes, "cleanup.policy": ptr("delete")}}, false)
	if err == nil {
		p.log.Info("created the repartition topic", "topic", topic, "partitions", p.cfg.RowsPartitions, "retention", p.cfg.RowsRetention)
		return nil
	}
	if !isTopicExists(err) {
		return fmt.Errorf("creating the repartition topic %s: %w", topic, err)
	}
	entries, err := p.admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	if err != nil {
		return fmt.Errorf("reading the retention of the repartition topic %s: %w", topic, err)
	}
	for _, e := range entries {
		if e.Name != "retention.ms" {
			continue
		}
		if ms, err := strconv.ParseInt(e.Value, 10, 64); err == nil && (ms < 0 || ms >= p.cfg.RowsRetention.Milliseconds()) {
			return nil
		}
	}
	if err := p.admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &retention}}, false); err != nil {
		return fmt.Errorf("the repartition topic %s keeps rows for less than --rows-retention %s, and raising it failed: %w (rows acknowledged upstream but not yet committed would be lost when the commit stage is down longer than that; raise retention.ms of %s, or lower --rows-retention)",
			topic, p.cfg.RowsRetention, err, topic)
	}
	p.log.Info("raised the retention of the repartition topic", "topic", topic, "retention", p.cfg.RowsRetention)
	return nil
}

// checkIdentity reads the cluster's id and checks that this warehouse belongs to it and that the pipeline
// writes this warehouse (see identity.go): a mismatch stops minipipe before it commits anything.
func (p *Pipeline) checkIdentity(ctx context.Context) error {
	cluster, err := kafka.ClusterID(p.client, p.names.RowsTopic())
	if err != nil {
		return fmt.Errorf("reading the Kafka cluster's id: %w", err)
	}
	p.cluster = cluster
	w, err := warehouseIdentity(p.wh, cluster, p.cfg.EmbeddedKafka, p.log)
	if err != nil {
		return err
	}
	replication, err := kafka.ResolveReplication(ctx, p.admin, p.cfg.ReplicationFactor)
	if err != nil {
		return err
	}
	return registerPipeline(ctx, p.kcfg, p.admin, replication, p.cfg.PipelineName, w, p.cfg.WarehouseURL())
}

// claimCluster is the cluster id recorded in manifest claims: none for --embedded-kafka, whose id is new at
// every start.
func (p *Pipeline) claimCluster() string {
	if p.cfg.EmbeddedKafka {
		return ""
	}
	return p.cluster
}

func ptr[T any](v T) *T { return &v }

func isTopicExists(err error) bool {
	var te *sarama.TopicError
	return errors.Is(err, sarama.ErrTopicAlreadyExists) || errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists
}

// discover starts an ingest processor for every source topic (and table generation) that has none, and
// stops those whose topic is gone or whose generation a replay has retired.
func (p *Pipeline) discover(ctx context.Context) error {
	if err := p.client.RefreshMetadata(); err != nil {
		return err
	}
	topics, err := p.client.Topics()
	if err != nil {
		return err
	}
	want := map[string]layout.Table{} // by topic@generation
	wantGen := map[string]int{}
	for _, topic := range topics {
		t, ok, err := p.catalog.ForTopic(topic)
		if err != nil {
			p.log.Warn("topic cannot become a table", "topic", topic, "error", err)
			continue
		}
		if !ok {
			continue
		}
		gens, err := generations(p.wh, t.Name)
		if err != nil {
			p.log.Warn("reading the generations of a table", "table", t.Name, "error", err)
			continue
		}
		if p.cfg.TableFormat == "iceberg" && len(gens) > 1 {
			// A replay writes a new directory and swaps it in: an Iceberg table's metadata and files live in
			// the current one, which the swap would delete. Refused here whatever the replay command said.
			p.log.Error("ignoring a replay request: Iceberg tables cannot be replayed yet", "table", t.Name, "generation", gens[1])
			gens = gens[:1]
		}
		for _, g := range gens {
			key := topic + "@" + strconv.Itoa(g)
			want[key] = t
			wantGen[key] = g
		}
	}
	p.mu.Lock()
	for key, r := range p.running {
		if _, ok := want[key]; !ok {
			p.log.Info("stopping an ingest processor", "topic", r.table.Topic, "generation", r.gen, "why", "topic gone or generation retired")
			r.in.Retire()
			r.cancel()
			delete(p.running, key)
		}
	}
	var missing []string
	for key := range want {
		if _, ok := p.running[key]; !ok {
			missing = append(missing, key)
		}
	}
	p.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	var names []string
	for _, key := range missing {
		names = append(names, want[key].Topic)
	}
	ids, _, err := kafka.TopicIDs(p.client, names)
	if err != nil {
		return fmt.Errorf("topic ids: %w", err)
	}
	sort.Strings(missing)
	for _, key := range missing {
		t := want[key]
		if table := IngestProcessor(p.cfg, t, wantGen[key]).Table; len(table) > 249 {
			p.log.Error("the topic's name is too long for its processor's state table (Kafka takes 249 characters); it is not ingested",
				"topic", t.Topic, "state_table", table)
			continue
		}
		if err := p.ensureDLQ(t.Topic); err != nil {
			p.log.Warn("creating the dead-letter topic", "topic", dlq.Topic(t.Topic), "error", err)
			continue
		}
		p.startIngest(ctx, key, t, wantGen[key], ids[t.Topic])
	}
	return nil
}

// ensureDLQ creates a source topic's dead-letter topic, large enough for dead letters of dlq.MaxBytes
// (a source record of Kafka's default 1 MiB limit with its headers), or raises an existing one to that.
func (p *Pipeline) ensureDLQ(topic string) error {
	name := dlq.Topic(topic)
	maxBytes := strconv.Itoa(dlq.MaxBytes)
	if _, err := p.client.Partitions(name); err == nil {
		limit, err := kafka.TopicMaxMessageBytes(p.admin, name)
		if err != nil || limit >= dlq.MaxBytes {
			return err
		}
		if err := p.admin.IncrementalAlterConfig(sarama.TopicResource, name, map[string]sarama.IncrementalAlterConfigsEntry{
			"max.message.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &maxBytes}}, false); err != nil {
			p.log.Warn("the dead-letter topic takes records of at most max.message.bytes; larger dead letters go without their value", "topic", name, "max_message_bytes", limit, "error", err)
		}
		return nil
	}
	replication, err := kafka.ResolveReplication(context.Background(), p.admin, p.cfg.ReplicationFactor)
	if err != nil {
		return err
	}
	err = p.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: int16(replication),
		ConfigEntries: map[string]*string{"max.message.bytes": &maxBytes}}, false)
	if err != nil && !isTopicExists(err) {
		return err
	}
	return nil
}

func (p *Pipeline) startIngest(ctx context.Context, key string, t layout.Table, gen int, topicID string) {
	p.catalog.Remember(t)
	drop := map[string]bool{}
	for _, c := range t.FieldColumns() {
		drop[c] = true
	}
	decl := IngestProcessor(p.cfg, t, gen)
	rowsParts, _ := p.client.Partitions(p.names.RowsTopic())
	srcParts, _ := p.client.Partitions(t.Topic)
	in := ingest.New(ingest.Config{
		Table:             ingest.Feed{Table: t, Generation: gen, TopicID: topicID},
		Group:             decl.Group,
		RowsTopic:         p.names.RowsTopic(),
		Rows:              p.rows,
		Producer:          p.producer,
		Validator:         validate.New(schemas{p.reg}, t.Subject(), drop),
		Tables:            p.tables,
		IdempotencyWindow: p.cfg.IdempotencyWindow,
		AllowedLateness:   p.cfg.AllowedLateness,
		RowsPartitions:    len(rowsParts),
		SourcePartitions:  int32(len(srcParts)),
		Metrics:           p.ingestM,
		Log:               p.log,
	})
	ictx, cancel := context.WithCancel(ctx)
	r := &runningIngest{table: t, gen: gen, topicID: topicID, cancel: cancel, done: make(chan struct{}), in: in}
	p.mu.Lock()
	p.running[key] = r
	p.mu.Unlock()
	p.log.Info("source topic feeds a table", "topic", t.Topic, "table", t.Name, "generation", gen, "partition_by", t.Spec.String())
	p.supervise(ictx, "ingest "+key, func() (*goka.Processor, error) {
		if err := p.ensureTablePartitions(decl); err != nil {
			return nil, err
		}
		return goka.NewProcessor(p.kcfg.Brokers, p.graph(decl.Graph(in.Process)), p.gk.ProcessorOptions(goka.WithStorageBuilder(p.tables.Builder()))...)
	}, r.done)
}

// graph records a goka graph as running (for /topology) and returns it.
func (p *Pipeline) graph(g *goka.GroupGraph) *goka.GroupGraph {
	p.mu.Lock()
	p.graphs[string(g.Group())] = g
	p.mu.Unlock()
	return g
}

// Running reports the goka graphs the pipeline runs, by group.
func (p *Pipeline) Running() []Running {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Running
	for _, g := range p.graphs {
		out = append(out, RunningOf(g))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// ensureTablePartitions gives an ingest processor's group table as many partitions as its source topic has
// (goka requires it): a source topic that grew keeps its processor running.
func (p *Pipeline) ensureTablePartitions(decl Processor) error {
	src, err := p.client.Partitions(decl.Input)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", decl.Input, err)
	}
	have, err := p.client.Partitions(decl.Table)
	if err != nil || len(have) == 0 {
		// Missing: created here rather than by goka, whose creation fails (and restarts the processor) when
		// several instances start at once and another one's creation wins.
		replication, rerr := kafka.ResolveReplication(context.Background(), p.admin, p.cfg.ReplicationFactor)
		if rerr != nil {
			return rerr
		}
		cerr := p.admin.CreateTopic(decl.Table, &sarama.TopicDetail{NumPartitions: int32(len(src)), ReplicationFactor: int16(replication),
			ConfigEntries: map[string]*string{"cleanup.policy": ptr("compact")}}, false)
		if cerr != nil && !isTopicExists(cerr) {
			return fmt.Errorf("creating the state table %s: %w", decl.Table, cerr)
		}
		return p.client.RefreshMetadata(decl.Table)
	}
	if len(have) >= len(src) {
		return nil
	}
	p.log.Info("the source topic has more partitions than its state table; adding partitions", "topic", decl.Input, "table", decl.Table, "partitions", len(src))
	if err := p.admin.CreatePartitions(decl.Table, int32(len(src)), nil, false); err != nil && !strings.Contains(err.Error(), "already has") {
		return fmt.Errorf("adding partitions to %s: %w", decl.Table, err)
	}
	return p.client.RefreshMetadata(decl.Table)
}

// supervise runs a goka processor until ctx ends, rebuilding it after failures with backoff.
func (p *Pipeline) supervise(ctx context.Context, name string, build func() (*goka.Processor, error), done chan struct{}) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if done != nil {
			defer close(done)
		}
		supervise.Run(ctx, p.log, name, build, p.monitor)
	}()
}

func (p *Pipeline) shutdown() {
	p.mu.Lock()
	for _, r := range p.running {
		r.cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.producer.Flush(ctx)
	p.producer.Close()
	if p.rows != nil {
		_ = p.rows.Flush(ctx)
		p.rows.Close()
	}
	p.admin.Close()
}
