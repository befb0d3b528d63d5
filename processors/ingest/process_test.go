package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/bucket"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/processors/validate"
	"github.com/minipipe/minipipe/state"
)

type oneSchema struct{ s *avro.Schema }

func (o oneSchema) Schema(id int) (*avro.Schema, error) {
	if id != 1 {
		return nil, fmt.Errorf("%w: %d", validate.ErrUnknownSchema, id)
	}
	return o.s, nil
}
func (o oneSchema) SubjectSchemaIDs(string) ([]int, error) { return []int{1}, nil }
func (o oneSchema) Sync() error                            { return nil }

// TestProcessSteps runs the fused callback in goka's tester, its group table included, against an
// in-process Kafka (kfake) for rows, dead letters and the table topic: each step does its part (ingest
// drops a retried Idempotency-Key record, validate sends a corrupt one to the dead-letter topic and counts
// by reason, bucket places rows in their hourly partition and moves the watermark), and the state it kept
// is in the table topic.
func TestProcessSteps(t *testing.T) {
	const group = "_p_ingest.src"
	table := string(goka.GroupTable(group))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "rows", "src.dlq", table))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := (kafka.Config{Brokers: cluster.ListenAddrs()}).NewProducer("test") // as the pipeline's: Partition >= 0 is kept
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	const schema = `{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}`
	s, err := avro.Parse(schema)
	if err != nil {
		t.Fatal(err)
	}
	record := func(id int) []byte {
		b, err := avro.EncodeJSON(schema, 1, fmt.Sprintf(`{"id":%d}`, id))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spec, _ := layout.ParseSpec("hourly", "")
	tables := state.NewTables(nil)
	tt := tester.New(t)
	rot := layout.Rotation{MaxRecords: 2, Interval: time.Second}
	in := New(Config{Table: Feed{Table: layout.Table{Name: "src", Topic: "src", Spec: spec, Rotation: rot}, Generation: 1}, Group: group, RowsTopic: "rows", Rows: kgoRows{cl},
		Producer: cl, Validator: validate.New(oneSchema{s}, "src-value", nil), Tables: tables, AllowedLateness: time.Minute, RowsPartitions: 1, SourcePartitions: 1,
		Linger: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	graph := goka.DefineGroup(goka.Group(group), goka.Input("src", new(codec.Bytes), in.Process), goka.Persist(new(codec.Bytes)))
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(tt), goka.WithStorageBuilder(tables.Builder()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	base := time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)
	idem := func(key string, i int) tester.EmitOption {
		return tester.WithHeaders(goka.Headers{kafka.HeaderIdempotencyKey: []byte(key), kafka.HeaderIdempotencyIndex: []byte(strconv.Itoa(i))})
	}
	tt.Consume("src", "", record(1), tester.WithTime(base), idem("req", 0))
	tt.Consume("src", "", record(2), tester.WithTime(base.Add(time.Minute)), idem("req", 1))
	tt.Consume("src", "", record(1), tester.WithTime(base.Add(2*time.Minute)), idem("req", 0)) // a retry
	tt.Consume("src", "", []byte{0, 0, 0, 0, 1, 0xff}, tester.WithTime(base.Add(3*time.Minute)))
	tt.Consume("src", "", record(3), tester.WithTime(base.Add(time.Hour)))
	tt.Consume("src", "", record(4), tester.WithTime(base.Add(10*time.Minute))) // late by 50 minutes

	// The rows, by partition path, from the repartition topic.
	readUntil := func(topic string, enough func([]*kgo.Record) bool) []*kgo.Record {
		t.Helper()
		rc, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var out []*kgo.Record
		deadline := time.Now().Add(10 * time.Second)
		for !enough(out) && time.Now().Before(deadline) {
			fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
			fs := rc.PollFetches(fctx)
			fcancel()
			fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		}
		return out
	}
	read := func(topic string, want int) []*kgo.Record {
		return readUntil(topic, func(rs []*kgo.Record) bool { return len(rs) >= want })
	}
	// The rows and seals by partition path, from the repartition topic: a file ends after 2 rows, and the
	// clock ends the others a second after their first row.
	var rows, seals map[string][]int64
	var marks int
	readUntil("rows", func(rs []*kgo.Record) bool {
		rows, seals, marks = map[string][]int64{}, map[string][]int64{}, 0
		for _, r := range rs {
			kind, err := envelope.Kind(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if kind == envelope.KindWatermark {
				marks++
				continue
			}
			b, err := envelope.DecodeBatch(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range b.Rows {
				rows[b.Path] = append(rows[b.Path], row.Offset)
			}
			if b.Seal {
				seals[b.Path] = append(seals[b.Path], b.SealAt)
			}
		}
		return len(seals["dt=2026-11-28/hr=07"]) >= 2 && len(seals["dt=2026-11-28/hr=08"]) >= 1
	})
	if fmt.Sprint(rows) != "map[dt=2026-11-28/hr=07:[0 1 5] dt=2026-11-28/hr=08:[4]]" {
		t.Errorf("rows by partition: %v (the retry at offset 2 and the corrupt record at 3 must be missing)", rows)
	}
	if fmt.Sprint(seals) != "map[dt=2026-11-28/hr=07:[1 5] dt=2026-11-28/hr=08:[4]]" {
		t.Errorf("seals by partition: %v, want the file of hr=07 to end after 2 rows (offset 1), then every file by the clock", seals)
	}
	dlq := read("src.dlq", 1)
	if len(dlq) != 1 || dlq[0].Offset != 0 {
		t.Fatalf("dead letters: %v", dlq)
	}

	// The state: in the store goka opened, and in the table topic it is rebuilt from.
	deadline := time.Now().Add(10 * time.Second)
	var st validate.Stats
	for time.Now().Before(deadline) {
		b, err := tables.Store(table, 0).Get(validate.StatsKey)
		if err != nil {
			t.Fatal(err)
		}
		if st, err = validate.DecodeStats(b); err == nil && st.Through == 5 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Accepted != 4 || st.Repeats != 1 || st.Rejected[validate.CodeCorrupt] != 1 || st.Schemas[1].Records != 4 {
		t.Errorf("stats: %+v", st)
	}
	var keys []string
	changelog := readUntil(table, func(rs []*kgo.Record) bool {
		keys = keys[:0]
		for _, r := range rs {
			keys = append(keys, string(r.Key[:2]))
		}
		return len(rs) >= 5 && slices.Contains(keys, bucket.FilePrefix)
	})
	if len(changelog) < 5 || !slices.Contains(keys, bucket.FilePrefix) {
		t.Errorf("table topic holds %v", keys)
	}
	b, err := tables.Store(table, 0).Get(bucket.WatermarkKey)
	if err != nil {
		t.Fatal(err)
	}
	wm, err := bucket.DecodeWatermark(b)
	if err != nil || wm.Late != 1 || wm.EventTime != base.Add(time.Hour).UnixMilli() || wm.Through != 5 {
		t.Errorf("watermark: %+v %v", wm, err)
	}
	if marks == 0 {
		t.Error("no watermark marker reached the repartition topic")
	}
	// The file boundaries are state too: every file ended, the seals are kept until the source offsets
	// pass them.
	for _, path := range []string{"dt=2026-11-28/hr=07", "dt=2026-11-28/hr=08"} {
		b, err := tables.Store(table, 0).Get(bucket.FilePrefix + envelope.Key("src", 1, path))
		if err != nil {
			t.Fatal(err)
		}
		if f, err := bucket.DecodeFile(b); err != nil || f.Open() {
			t.Errorf("file state of %s: %+v %v (%q)", path, f, err, b)
		}
	}
}
