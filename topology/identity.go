package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/sinks/fs"
)

// A warehouse belongs to one Kafka cluster, and a pipeline to one warehouse. Instances that share a
// --pipeline-name share the consumer groups, so they split the rows between them: pointed at different
// warehouses they would each commit a part of every table. Two records catch that at startup:
//   - _minipipe/warehouse.json in the warehouse: its id and the cluster that writes it (created once);
//   - the topic _minipipe_pipelines on the cluster: for each pipeline, the warehouse it writes (the first
//     registration after the last tombstone wins, so two instances racing agree). It keeps every record
//     forever (cleanup.policy delete, no retention limit): compaction would keep the last registration of a
//     key, not the first, and could hand the pipeline to the instance that lost the race.

// PipelinesTopic holds each pipeline's warehouse.
const PipelinesTopic = "_minipipe_pipelines"

// WarehouseIdentity is _minipipe/warehouse.json.
type WarehouseIdentity struct {
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Created time.Time `json:"created"`
}

// PipelineRegistration is a pipeline's record in PipelinesTopic.
type PipelineRegistration struct {
	Pipeline    string    `json:"pipeline"`
	WarehouseID string    `json:"warehouse_id"`
	Warehouse   string    `json:"warehouse"`
	Registered  time.Time `json:"registered"`
	By          string    `json:"by"`
}

// ErrIdentity is a pipeline, warehouse and cluster that do not belong together.
var ErrIdentity = errors.New("identity mismatch")

// warehouseIdentity reads the warehouse's identity, creating it on first use. embedded says the cluster
// is --embedded-kafka's, whose id is new at every start: its cluster is not checked.
func warehouseIdentity(wh fs.FS, cluster string, embedded bool, log *slog.Logger) (WarehouseIdentity, error) {
	name := fs.Join("_minipipe", "warehouse.json")
	for attempt := 0; attempt < 3; attempt++ {
		b, err := wh.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			id := make([]byte, 16)
			_, _ = rand.Read(id)
			w := WarehouseIdentity{ID: hex.EncodeToString(id), Cluster: cluster, Created: time.Now().UTC()}
			data, _ := json.MarshalIndent(w, "", "  ")
			if err := wh.CreateExclusive(name, data); errors.Is(err, fs.ErrExist) {
				continue // another instance made it first
			} else if err != nil {
				return WarehouseIdentity{}, fmt.Errorf("recording the warehouse's identity: %w", err)
			}
			log.Info("a new warehouse: recorded its identity", "warehouse", wh.URI("."), "id", w.ID, "kafka_cluster", cluster)
			return w, nil
		}
		if err != nil {
			return WarehouseIdentity{}, fmt.Errorf("reading the warehouse's identity %s: %w", wh.URI(name), err)
		}
		var w WarehouseIdentity
		if err := json.Unmarshal(b, &w); err != nil || w.ID == "" {
			return WarehouseIdentity{}, fmt.Errorf("%s is not a warehouse identity (%v): it is minipipe's own file, do not edit it", wh.URI(name), err)
		}
		if w.Cluster != cluster && !embedded {
			return w, fmt.Errorf("%w: the warehouse %s belongs to Kafka cluster %s, but --brokers reach cluster %s: give this pipeline its own --warehouse, or point it at the cluster that writes this one",
				ErrIdentity, wh.URI("."), w.Cluster, cluster)
		}
		return w, nil
	}
	return WarehouseIdentity{}, fmt.Errorf("recording the warehouse's identity: lost three races for %s", wh.URI(name))
}

// registerPipeline records that the pipeline writes the warehouse, or checks that it is the warehouse it
// was registered with.
func registerPipeline(ctx context.Context, kcfg kafka.Config, admin sarama.ClusterAdmin, replication int, pipeline string, w WarehouseIdentity, uri string) error {
	cleanup, forever := "delete", "-1"
	err := admin.CreateTopic(PipelinesTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: int16(replication),
		ConfigEntries: map[string]*string{"cleanup.policy": &cleanup, "retention.ms": &forever, "retention.bytes": &forever}}, false)
	if err != nil && !isTopicExists(err) {
		return fmt.Errorf("creating %s: %w", PipelinesTopic, err)
	}
	reg, err := readRegistration(ctx, kcfg, pipeline)
	if err != nil {
		return err
	}
	if reg == nil {
		host, _ := os.Hostname()
		mine := PipelineRegistration{Pipeline: pipeline, WarehouseID: w.ID, Warehouse: uri, Registered: time.Now().UTC(), By: host}
		value, _ := json.Marshal(mine)
		producer, err := sarama.NewSyncProducer(kcfg.Brokers, kcfg.Sarama())
		if err != nil {
			return fmt.Errorf("registering the pipeline: %w", err)
		}
		_, _, err = producer.SendMessage(&sarama.ProducerMessage{Topic: PipelinesTopic, Key: sarama.StringEncoder(pipeline), Value: sarama.ByteEncoder(value)})
		producer.Close()
		if err != nil {
			return fmt.Errorf("registering the pipeline: %w", err)
		}
		// Read back: of two instances registering at once, the first record wins for both.
		if reg, err = readRegistration(ctx, kcfg, pipeline); err != nil {
			return err
		}
		if reg == nil {
			return fmt.Errorf("registering the pipeline: its record is not in %s", PipelinesTopic)
		}
	}
	if reg.WarehouseID != w.ID {
		return fmt.Errorf("%w: pipeline %q writes the warehouse %s (id %s), but this instance's --warehouse is %s (id %s): instances sharing a --pipeline-name share the work and must share the warehouse; give this one the same --warehouse, or its own --pipeline-name",
			ErrIdentity, pipeline, reg.Warehouse, reg.WarehouseID, uri, w.ID)
	}
	return nil
}

// readRegistration reads PipelinesTopic to its end and returns the pipeline's registration: the first
// record for it after its last tombstone (nil when there is none).
func readRegistration(ctx context.Context, kcfg kafka.Config, pipeline string) (*PipelineRegistration, error) {
	client, err := sarama.NewClient(kcfg.Brokers, kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, err)
	}
	defer client.Close()
	end, err := client.GetOffset(PipelinesTopic, 0, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, err)
	}
	start, err := client.GetOffset(PipelinesTopic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, err)
	}
	if end <= start {
		return nil, nil
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(PipelinesTopic, 0, start)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, err)
	}
	defer pc.Close()
	var reg *PipelineRegistration
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case m := <-pc.Messages():
			if string(m.Key) == pipeline {
				if m.Value == nil {
					reg = nil
				} else if reg == nil {
					var r PipelineRegistration
					if err := json.Unmarshal(m.Value, &r); err == nil && r.WarehouseID != "" {
						reg = &r
					}
				}
			}
			if m.Offset >= end-1 {
				return reg, nil
			}
		case err := <-pc.Errors():
			return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %s: %w", PipelinesTopic, ctx.Err())
		}
	}
}
