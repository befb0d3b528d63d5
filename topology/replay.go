package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// Replay rebuilds a table from its topic into a new generation and swaps it in atomically:
//
//  1. `minipipe replay --table T` writes a replay request for generation N+1 into the warehouse;
//  2. every running pipeline sees it and starts a second ingest processor for T's topic, in a new consumer
//     group that starts at the earliest retained offset and writes rows for generation N+1 — through the
//     same commit stage and exactly-once protocol as the live table, into T.g<N+1>;
//  3. once generation N+1 holds, for every table partition and source partition, at least what
//     generation N holds (what is still in the topic), the generation pointer moves to N+1 in one atomic
//     write: queries read N until then and N+1 from then on;
//  4. the pipelines stop writing N, and N's files are removed after a grace period.
//
// Generation N+1's ingest group keeps running afterwards as the live one.

// ReplayRequest is the warehouse file asking for a replay.
type ReplayRequest struct {
	Table      string    `json:"table"`
	Topic      string    `json:"topic"`
	Generation int       `json:"generation"`
	Requested  time.Time `json:"requested"`
}

func tableDir(table string) string { return fs.Join("_minipipe", "tables", table) }

func replayPath(table string) string { return fs.Join(tableDir(table), "replay") }

// ReadReplay returns the pending replay of a table, or nil.
func ReadReplay(f fs.FS, table string) (*ReplayRequest, error) {
	b, err := f.ReadFile(replayPath(table))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r ReplayRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("replay request of %s: %w", table, err)
	}
	return &r, nil
}

// SetGeneration swaps a table's generation (atomic replace of the pointer file).
func SetGeneration(f fs.FS, table string, gen int) error {
	return f.WriteFile(fs.Join(tableDir(table), "generation"), []byte(strconv.Itoa(gen)+"\n"))
}

// generations are the generations of a table the pipeline must write: the current one and, during a
// replay, the one being built.
func generations(f fs.FS, table string) ([]int, error) {
	cur, err := CurrentGeneration(f, table)
	if err != nil {
		return nil, err
	}
	gens := []int{cur}
	r, err := ReadReplay(f, table)
	if err != nil {
		return nil, err
	}
	if r != nil && r.Generation > cur {
		gens = append(gens, r.Generation)
	}
	return gens, nil
}

// keyStates collects the committed state of every table partition from every manifest.
func keyStates(f fs.FS) (map[string]*manifest.KeyState, error) {
	root := fs.Join("_minipipe", "manifests")
	topics, err := f.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*manifest.KeyState{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*manifest.KeyState{}
	for _, t := range topics {
		parts, err := f.ReadDir(fs.Join(root, t.Name))
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			_, st, err := manifest.Load(f, fs.Join(root, t.Name, p.Name))
			if err != nil {
				return nil, err
			}
			for k, v := range st.Keys {
				if cur := out[k]; cur != nil {
					cur.Rows += v.Rows
					cur.Files += v.Files
					for s, o := range v.HWM {
						if o > cur.HWM[s] {
							cur.HWM[s] = o
						}
					}
					continue
				}
				out[k] = v
			}
		}
	}
	return out, nil
}

// replayProgress compares the generation being built with the live one: the pairs (table partition,
// source partition) of the live generation whose rows are still in the topic but not yet all committed
// in the new one. earliest maps a source (topic:id:partition) to its earliest retained offset.
func replayProgress(states map[string]*manifest.KeyState, table string, live, next int, earliest map[string]int64) (missing int, rowsLive, rowsNext int64) {
	for _, k := range states {
		if k.Table != table {
			continue
		}
		switch k.Generation {
		case live:
			rowsLive += k.Rows
		case next:
			rowsNext += k.Rows
			continue
		default:
			continue
		}
		var nk *manifest.KeyState
		for _, cand := range states {
			if cand.Table == table && cand.Generation == next && cand.Path == k.Path {
				nk = cand
				break
			}
		}
		for src, hwm := range k.HWM {
			first, ok := earliest[src]
			if !ok || hwm < first {
				continue // gone from the topic (retention, or a topic since recreated): nothing to replay
			}
			if nk == nil || nk.HWM[src] < hwm {
				missing++
			}
		}
	}
	return missing, rowsLive, rowsNext
}

// earliestOffsets returns the earliest retained offset of each partition of a topic, keyed like the
// manifest's sources (topic:id:partition).
func earliestOffsets(client sarama.Client, topic string) (map[string]int64, error) {
	ids, _, err := kafka.TopicIDs(client, []string{topic})
	if err != nil {
		return nil, err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range parts {
		o, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		out[fmt.Sprintf("%s:%s:%d", topic, ids[topic], p)] = o
	}
	return out, nil
}

// groupMembers is the number of members of a consumer group (0 for a group that does not exist).
func groupMembers(admin sarama.ClusterAdmin, group string) (int, error) {
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range ds {
		if d.GroupId == group {
			n += len(d.Members)
		}
	}
	return n, nil
}

// topicOfTable finds the source topic of a table among the cluster's topics.
func topicOfTable(catalog *TableRules, topics []string, table string) (string, error) {
	var found []string
	for _, topic := range topics {
		if t, ok, err := catalog.ForTopic(topic); err == nil && ok && t.Name == table {
			found = append(found, topic)
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no topic feeds table %s", table)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("topics %s all feed table %s: declare one in the config file", strings.Join(found, ", "), table)
}

// RunReplay asks the running pipeline to rebuild a table and swaps the new generation in once it has
// caught up; progress goes to out.
func RunReplay(ctx context.Context, cfg Config, table string, out io.Writer, grace time.Duration) error {
	if cfg.TableFormat == "iceberg" {
		return fmt.Errorf("replay rebuilds a table in a new directory and swaps it in: not available for Iceberg tables yet (roll the Iceberg table back to a snapshot instead)")
	}
	wh, err := fs.Open(cfg.WarehouseURL())
	if err != nil {
		return err
	}
	defer wh.Close()
	catalog, err := NewTableRules(cfg)
	if err != nil {
		return err
	}
	kcfg, err := cfg.KafkaConfig("minipipe-replay")
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(cfg.Brokers, kcfg.Sarama())
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		return err
	}
	topic, err := topicOfTable(catalog, topics, table)
	if err != nil {
		return err
	}
	live, err := CurrentGeneration(wh, table)
	if err != nil {
		return err
	}
	req, err := ReadReplay(wh, table)
	if err != nil {
		return err
	}
	if req == nil || req.Generation <= live {
		next := live + 1
		for {
			if ok, _ := fs.Exists(wh, commit.Location(table, next)); !ok {
				break
			}
			next++ // a directory left by an abandoned replay
		}
		req = &ReplayRequest{Table: table, Topic: topic, Generation: next, Requested: time.Now().UTC()}
		b, _ := json.Marshal(req)
		if err := wh.CreateExclusive(replayPath(table), b); err != nil {
			return fmt.Errorf("requesting the replay: %w", err)
		}
		fmt.Fprintf(out, "replaying %s from topic %s into generation %d (queries keep reading generation %d)\n", table, topic, next, live)
	} else {
		fmt.Fprintf(out, "resuming the replay of %s into generation %d\n", table, req.Generation)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	group := Names{cfg.PipelineName}.IngestGroup(topic, req.Generation)
	start := time.Now()
	last, lastIdle := time.Time{}, time.Time{}
	for {
		// A running pipeline takes the request within seconds (it looks for replays every --topic-refresh)
		// and its new ingest group gets members; without one nothing happens, and the user should know.
		if time.Since(start) > 10*time.Second && time.Since(lastIdle) > 30*time.Second {
			if members, err := groupMembers(admin, group); err == nil && members == 0 {
				fmt.Fprintf(out, "no running pipeline has taken the request: the consumer group %s has no members after %s.\n"+
					"  Start one with the same connection flags (--pipeline-name %s, --warehouse %s); the request stays in the warehouse\n"+
					"  and a pipeline that starts takes it. Waiting; Ctrl-C stops waiting and leaves the request in place.\n",
					group, time.Since(start).Round(time.Second), cfg.PipelineName, cfg.WarehouseURL())
				lastIdle, last = time.Now(), time.Now()
			} else if err == nil {
				lastIdle = time.Now().Add(time.Hour) // taken: no need to look again for a while
			}
		}
		states, err := keyStates(wh)
		if err != nil {
			return err
		}
		earliest, err := earliestOffsets(client, topic)
		if err != nil {
			return err
		}
		missing, rowsLive, rowsNext := replayProgress(states, table, live, req.Generation, earliest)
		if time.Since(last) > 5*time.Second || missing == 0 {
			fmt.Fprintf(out, "  %s: generation %d has %d rows, generation %d has %d; %d table/source partitions to catch up\n",
				time.Since(start).Round(time.Second), req.Generation, rowsNext, live, rowsLive, missing)
			last = time.Now()
		}
		if missing == 0 && rowsNext >= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted; the replay goes on in the pipeline: run the command again to finish it")
		case <-time.After(time.Second):
		}
	}
	if err := SetGeneration(wh, table, req.Generation); err != nil {
		return fmt.Errorf("swapping generation %d in: %w", req.Generation, err)
	}
	if err := wh.Remove(replayPath(table)); err != nil {
		return err
	}
	fmt.Fprintf(out, "generation %d of %s swapped in after %s; queries read it now\n", req.Generation, table, time.Since(start).Round(time.Millisecond))
	if cfg.Catalog == "hive" {
		if err := swapMetastore(ctx, cfg, wh, table, req.Generation, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			fmt.Fprintf(out, "warning: %v (the pipeline's reconciliation retries it)\n", err)
		} else {
			fmt.Fprintf(out, "metastore table %s.%s points at generation %d\n", cfg.HiveDatabase, table, req.Generation)
		}
	}
	// Old files go after a grace period, for queries that started before the swap.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(grace):
	}
	if err := wh.RemoveAll(commit.Location(table, live)); err != nil {
		return fmt.Errorf("removing generation %d: %w", live, err)
	}
	fmt.Fprintf(out, "generation %d removed\n", live)
	return nil
}
