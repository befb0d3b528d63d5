package topology

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// lagCollector exports the consumer lag of the pipeline's groups per partition: records in the topic past
// the group's committed offset. It is read from Kafka every interval (the same numbers on every instance,
// whichever owns the partitions), and served from the last reading, so that a scrape never waits for Kafka.
type lagCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last []lagPoint
}

type lagPoint struct {
	group, topic string
	partition    int32
	lag          int64
	end          int64
	committed    int64 // -1: the group has committed nothing yet
}

func newLagCollector() *lagCollector {
	return &lagCollector{desc: prometheus.NewDesc("minipipe_consumer_lag",
		"Records of a topic partition past the committed offset of a pipeline's consumer group (the commit stage's group on the repartition topic, an ingest group on its source topic).",
		[]string{"group", "topic", "partition"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	points := c.last
	c.mu.Unlock()
	for _, p := range points {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(p.lag), p.group, p.topic, strconv.Itoa(int(p.partition)))
	}
}

// read measures the lag of each group on its topic.
func (c *lagCollector) read(client sarama.Client, admin sarama.ClusterAdmin, groups map[string]string) {
	var points []lagPoint
	for group, topic := range groups {
		parts, err := client.Partitions(topic)
		if err != nil {
			continue
		}
		offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
		if err != nil {
			continue
		}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				continue
			}
			committed := int64(-1)
			if b := offsets.GetBlock(topic, p); b != nil {
				committed = b.Offset
			}
			groupCommitted := committed
			if committed < 0 {
				if committed, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
					continue
				}
			}
			points = append(points, lagPoint{group: group, topic: topic, partition: p, lag: max(end-committed, 0), end: end, committed: groupCommitted})
		}
	}
	c.mu.Lock()
	c.last = points
	c.mu.Unlock()
}

// watchLag reads the lag of the commit group and of every running ingest group every interval.
func (p *Pipeline) watchLag(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		groups := map[string]string{p.names.CommitGroup(): p.names.RowsTopic()}
		p.mu.Lock()
		for _, r := range p.running {
			groups[p.names.IngestGroup(r.table.Topic, r.gen)] = r.table.Topic
		}
		p.mu.Unlock()
		p.lag.read(p.client, p.admin, groups)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// points is the last reading.
func (c *lagCollector) points() []lagPoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
