package topology

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/bucket"
	"github.com/minipipe/minipipe/processors/validate"
)

// SourceStats is what the ingest processor of a source topic keeps about it, read from its group table:
// the validation stats and the watermark of each partition.
type SourceStats struct {
	validate.TopicStats
	Table      string
	Generation int
	Watermarks map[int32]bucket.Watermark
}

// ReadSourceStats reads the state of every source topic's ingest processor (its latest generation) from
// the group tables in Kafka: what every instance has written, whichever owns the partitions now.
func ReadSourceStats(ctx context.Context, kcfg kafka.Config, cfg Config) ([]SourceStats, error) {
	return readSourceStats(ctx, kcfg, cfg, 0)
}

// readSourceStats reads the stats; with idle > 0 a partition read ends when no record came for that long
// (the console: a partition whose last offsets are never delivered, such as transaction markers or records
// compacted away, would hold every read up to the time limit).
func readSourceStats(ctx context.Context, kcfg kafka.Config, cfg Config, idle time.Duration) ([]SourceStats, error) {
	catalog, err := NewTableRules(cfg)
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(kcfg.Brokers, kcfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, t := range topics {
		exists[t] = true
	}
	var out []SourceStats
	for _, topic := range topics {
		t, ok, err := catalog.ForTopic(topic)
		if err != nil || !ok {
			continue
		}
		gen := 0
		for g := 1; g < 1000; g++ {
			if !exists[IngestProcessor(cfg, t, g).Table] {
				if g > 1 {
					break
				}
				continue
			}
			gen = g
		}
		if gen == 0 {
			continue // no processor has run for it yet
		}
		s := SourceStats{TopicStats: validate.TopicStats{Topic: topic, Partitions: map[int32]validate.Stats{}}, Table: t.Name, Generation: gen,
			Watermarks: map[int32]bucket.Watermark{}}
		table := IngestProcessor(cfg, t, gen).Table
		parts, err := client.Partitions(table)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", table, err)
		}
		for _, p := range parts {
			err := readToEndIdle(ctx, client, table, p, idle, func(key, value []byte) {
				switch string(key) {
				case validate.StatsKey:
					if st, err := validate.DecodeStats(value); err == nil && value != nil {
						s.Partitions[p] = st
					}
				case bucket.WatermarkKey:
					if w, err := bucket.DecodeWatermark(value); err == nil && value != nil {
						s.Watermarks[p] = w
					}
				}
			})
			if err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// readToEnd calls fn for every record of a partition, from the oldest to the one before the end offset
// read at the start.
func readToEnd(ctx context.Context, client sarama.Client, topic string, partition int32, fn func(key, value []byte)) error {
	return readToEndIdle(ctx, client, topic, partition, 0, fn)
}

// readToEndIdle is readToEnd that, with idle > 0, also ends after idle without a record.
func readToEndIdle(ctx context.Context, client sarama.Client, topic string, partition int32, idle time.Duration, fn func(key, value []byte)) error {
	end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("reading %s/%d: %w", topic, partition, err)
	}
	start, err := client.GetOffset(topic, partition, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("reading %s/%d: %w", topic, partition, err)
	}
	if end <= start {
		return nil
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, start)
	if err != nil {
		return fmt.Errorf("reading %s/%d: %w", topic, partition, err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var quiet <-chan time.Time
	var timer *time.Timer
	if idle > 0 {
		timer = time.NewTimer(idle)
		defer timer.Stop()
		quiet = timer.C
	}
	for {
		select {
		case <-quiet:
			return nil
		case m := <-pc.Messages():
			fn(m.Key, m.Value)
			if m.Offset >= end-1 {
				return nil
			}
			if timer != nil {
				timer.Reset(idle)
			}
		case err := <-pc.Errors():
			return fmt.Errorf("reading %s/%d: %w", topic, partition, err)
		case <-ctx.Done():
			return fmt.Errorf("reading %s/%d: %w", topic, partition, ctx.Err())
		}
	}
}

// WriteSourceStats prints the stats as `minipipe topics` does.
func WriteSourceStats(w io.Writer, stats []SourceStats) {
	if len(stats) == 0 {
		fmt.Fprintln(w, "no source topic has been ingested yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tTABLE\tPARTITIONS\tACCEPTED\tREJECTED\tREPEATS\tTOMBSTONES\tLATE\tWATERMARK")
	for _, s := range stats {
		accepted, repeats, tombstones, rejected, _ := s.Total()
		var nrej, late, wm int64
		for _, n := range rejected {
			nrej += n
		}
		for _, w := range s.Watermarks {
			late += w.Late
			if wm == 0 || w.EventTime < wm {
				wm = w.EventTime
			}
		}
		mark := "-"
		if wm > 0 {
			mark = time.UnixMilli(wm).UTC().Format(time.RFC3339)
		}
		table := s.Table
		if s.Generation > 1 {
			table += fmt.Sprintf(" (generation %d)", s.Generation)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Topic, table, len(s.Partitions), accepted, nrej, repeats, tombstones, late, mark)
	}
	tw.Flush()
	for _, s := range stats {
		_, _, _, rejected, schemas := s.Total()
		fmt.Fprintf(w, "\n%s\n", s.Topic)
		for _, sc := range schemas {
			fmt.Fprintf(w, "  schema id %-6d %10d records in %d partitions, %s … %s\n", sc.ID, sc.Records, sc.Partitions,
				time.UnixMilli(sc.FirstTime).UTC().Format(time.RFC3339), time.UnixMilli(sc.LastTime).UTC().Format(time.RFC3339))
		}
		codes := make([]string, 0, len(rejected))
		for c := range rejected {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		for _, c := range codes {
			fmt.Fprintf(w, "  rejected %-22s %10d (dead letters in %s.dlq)\n", c, rejected[c], s.Topic)
		}
		if len(schemas) == 0 && len(codes) == 0 {
			fmt.Fprintln(w, "  no record validated yet")
		}
	}
}
