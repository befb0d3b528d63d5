package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/acks"

	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// The scenarios of kafka-connect-hdfs's TopicPartitionWriter, DataWriter and FailureRecovery tests,
// replayed against the commit stage without Kafka: batches of rows and seal markers go in, committed
// files, the manifest and acknowledgements come out.

const (
	v1 = `{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}`
	v2 = `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}`
)

type fakeSchemas map[int]*avro.Schema

func (f fakeSchemas) Schema(id int) (*avro.Schema, error) {
	if s, ok := f[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("schema %d unknown", id)
}

// harness drives one commit partition. It plays the bucket step coarsely: a batch that brings its file
// (table partition and source partition) to rot.MaxRecords rows not seen before carries the seal.
type harness struct {
	t      *testing.T
	rot    layout.Rotation
	counts map[string]*[2]int64 // rows counted and the last offset counted, by path and source
	fs     fs.FS
	c      *Committer
	p      *partWriter
	ackMu  sync.Mutex
	acks   []string // guarded by ackMu: a dying partition acknowledges from its own goroutine
	codec  map[int]*avro.Codec
}

func newHarness(t *testing.T, rot layout.Rotation, maxOpen int) *harness {
	t.Helper()
	l, err := fs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessFS(t, l, rot, maxOpen, 0)
}

func newHarnessFS(t *testing.T, l fs.FS, rot layout.Rotation, maxOpen, compactEvery int) *harness {
	t.Helper()
	h := &harness{t: t, fs: l, codec: map[int]*avro.Codec{}, rot: rot, counts: map[string]*[2]int64{}}
	schemas := fakeSchemas{}
	for id, text := range map[int]string{1: v1, 2: v2} {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		schemas[id] = s
		h.codec[id], _ = avro.NewCodec(s)
	}
	h.c = New(Config{Group: "g", RowsTopic: "rows", FS: l, Schemas: schemas, Instance: "test", MaxOpenFiles: maxOpen, CompactEvery: compactEvery,
		Tables: func(name string) layout.Table { return layout.Table{Name: name} },
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil))})
	h.p = h.newPart()
	return h
}

func (h *harness) newPart() *partWriter {
	return &partWriter{c: h.c, id: 0, ctx: context.Background(), acks: acks.NewQueue(), files: map[string]*openFile{}, holes: map[string][]*acks.Entry{}, seen: map[string]int64{}}
}

// batch makes a batch of rows for table t, partition path.
func (h *harness) batch(path string, src int32, schema int, offsets ...int64) []byte {
	return h.linked(path, src, schema, -1, offsets...)
}

// linked makes a batch whose Prev link is prev.
func (h *harness) linked(path string, src int32, schema int, prev int64, offsets ...int64) []byte {
	b := &envelope.Batch{Table: "t", Generation: 1, Path: path, Partitions: [][2]string{{"dt", strings.TrimPrefix(path, "dt=")}},
		Source: envelope.Source{Topic: "src", TopicID: "id", Partition: src}, Prev: prev}
	for _, o := range offsets {
		payload, err := h.codec[schema].AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d}`, o)))
		if err != nil {
			h.t.Fatal(err)
		}
		b.Rows = append(b.Rows, envelope.Row{Offset: o, Timestamp: 1, SchemaID: schema, Payload: payload})
	}
	ck := fmt.Sprint(path, src)
	c := h.counts[ck]
	if c == nil {
		c = &[2]int64{0, -1}
		h.counts[ck] = c
	}
	for _, o := range offsets {
		if o > c[1] {
			c[0], c[1] = c[0]+1, o
		}
	}
	if h.rot.MaxRecords > 0 && c[0] >= h.rot.MaxRecords {
		b.Seal, c[0] = true, 0
	}
	return envelope.EncodeBatch(b)
}

// acked is what the partition acknowledged so far, in order ("!" marks a failed record).
func (h *harness) acked() []string {
	h.ackMu.Lock()
	defer h.ackMu.Unlock()
	return append([]string(nil), h.acks...)
}

// sealOnly sends a seal without rows: the file of path from source src ends with the row at offset at.
func (h *harness) sealOnly(p *partWriter, rOffset int64, path string, src int32, at int64) {
	h.send(p, rOffset, envelope.EncodeBatch(&envelope.Batch{Table: "t", Generation: 1, Path: path,
		Source: envelope.Source{Topic: "src", TopicID: "id", Partition: src}, Prev: -1, Seal: true, SealAt: at}))
}

// send hands one record of the repartition topic to the partition, as goka would.
func (h *harness) send(p *partWriter, rOffset int64, value []byte) {
	e := p.acks.Push(func(err error) {
		h.ackMu.Lock()
		h.acks = append(h.acks, fmt.Sprintf("%d%s", rOffset, map[bool]string{true: "!", false: ""}[err != nil]))
		h.ackMu.Unlock()
	})
	p.handle(context.Background(), value, e, rOffset)
	p.acks.Release(e, nil)
}

// seal sends a seal marker of minipipe before version 3 (the file whose first row is first).
func (h *harness) seal(p *partWriter, rOffset int64, path string, src int32, first int64) {
	h.send(p, rOffset, envelope.EncodeSeal(envelope.Seal{Key: envelope.Key("t", 1, path), FileID: envelope.FileID(envelope.Source{Topic: "src", TopicID: "id", Partition: src}, first)}))
}

// committed lists the committed files of table t as path/name → rows, from the manifest.
func (h *harness) committed() []string {
	h.t.Helper()
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		es, err := h.fs.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		for _, e := range es {
			if e.IsDir {
				walk(fs.Join(dir, e.Name))
				continue
			}
			out = append(out, strings.TrimPrefix(fs.Join(dir, e.Name), "t/"))
		}
	}
	walk("t")
	sort.Strings(out)
	return out
}

func name(path string, src int32, first int64) string {
	return path + "/" + envelope.FileID(envelope.Source{Topic: "src", Partition: src}, first) + ".parquet"
}

func TestRotationByCount(t *testing.T) {
	// DataWriterAvroTest.testWriteRecord: 7 records, flush size 3 → [0-2], [3-5]; record 6 waits.
	h := newHarness(t, layout.Rotation{MaxRecords: 3}, 64)
	for i := int64(0); i < 7; i++ {
		h.send(h.p, i, h.batch("dt=d1", 0, 1, i))
	}
	want := []string{name("dt=d1", 0, 0), name("dt=d1", 0, 3)}
	if got := h.committed(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if fmt.Sprint(h.acked()) != "[0 1 2 3 4 5]" {
		t.Fatalf("acknowledged %v: only what is committed, in order", h.acked())
	}
	// testFlushPartialFile / G4: a seal marker of an earlier version closes the open file.
	h.seal(h.p, 7, "dt=d1", 0, 6)
	if got := h.committed(); len(got) != 3 || fmt.Sprint(h.acked()) != "[0 1 2 3 4 5 6 7]" {
		t.Fatalf("after the seal: %v, acked %v", got, h.acked())
	}
	// A stale seal (for a file already committed) changes nothing.
	h.seal(h.p, 8, "dt=d1", 0, 6)
	if got := h.committed(); len(got) != 3 {
		t.Fatalf("stale seal: %v", got)
	}
	if k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]; k.Rows != 7 || k.Files != 3 || k.HWM["src:id:0"] != 6 {
		t.Fatalf("manifest state %+v", k)
	}
}

func TestNonZeroOffsetsAndInterleavedSources(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 3}, 64)
	// Source partition 0 from offset 9, partition 1 from 100, interleaved in the repartition topic. A file
	// holds one source partition's rows: the seal of one does not end the other's.
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 9, 10))
	h.send(h.p, 1, h.batch("dt=d1", 1, 1, 100))
	h.send(h.p, 2, h.batch("dt=d1", 1, 1, 101, 102)) // sealed
	if got, want := h.committed(), []string{name("dt=d1", 1, 100)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	h.send(h.p, 3, h.batch("dt=d1", 0, 1, 11, 12, 13)) // sealed
	want := []string{name("dt=d1", 0, 9), name("dt=d1", 1, 100)}
	if got := h.committed(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]
	if k.HWM["src:id:0"] != 13 || k.HWM["src:id:1"] != 102 || k.Files != 2 || k.Rows != 8 {
		t.Fatalf("manifest %+v", k)
	}
}

func TestDuplicatesDropped(t *testing.T) {
	// An at-least-once upstream re-sends what was committed: only the new rows count.
	h := newHarness(t, layout.Rotation{MaxRecords: 3}, 64)
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0, 1, 2))
	h.send(h.p, 1, h.batch("dt=d1", 0, 1, 0, 1, 2, 3, 4)) // a replay, then two new rows
	// A redo's seal for a file already committed, meeting an open file with rows past it, ends nothing.
	h.send(h.p, 2, envelope.EncodeBatch(&envelope.Batch{Table: "t", Generation: 1, Path: "dt=d1",
		Source: envelope.Source{Topic: "src", TopicID: "id", Partition: 0}, Prev: -1, Seal: true, SealAt: 2}))
	if k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]; k.Files != 1 {
		t.Fatalf("a stale seal ended the open file: %+v", k)
	}
	h.send(h.p, 3, h.batch("dt=d1", 0, 1, 4, 5)) // 4 again (still open), then 5: sealed
	k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]
	if k.Rows != 6 || k.Files != 2 {
		t.Fatalf("rows %d files %d, want 6 and 2", k.Rows, k.Files)
	}
}

func TestSchemaVersions(t *testing.T) {
	// A newer schema starts a new file; an older one is read into the open newer file (projected). Here the
	// commit stage ends the file itself (the bucket step would have sealed it).
	h := newHarness(t, layout.Rotation{MaxRecords: 100}, 64)
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0, 1))
	h.send(h.p, 1, h.batch("dt=d1", 0, 2, 2))
	h.send(h.p, 2, h.batch("dt=d1", 0, 1, 3))
	if got := h.committed(); fmt.Sprint(got) != fmt.Sprint([]string{name("dt=d1", 0, 0)}) {
		t.Fatalf("files %v", got)
	}
	h.sealOnly(h.p, 3, "dt=d1", 0, 3)
	k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]
	if k.Files != 2 || k.Rows != 4 || fmt.Sprint(k.SchemaIDs) != "[1 2]" {
		t.Fatalf("state %+v", k)
	}
}

func TestKeysAckInOrderAndMaxOpenFiles(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 2}, 2)
	h.send(h.p, 0, h.batch("dt=a", 0, 1, 0))
	h.send(h.p, 1, h.batch("dt=b", 0, 1, 1))
	h.send(h.p, 2, h.batch("dt=b", 0, 1, 2)) // dt=b fills and commits; dt=a (offset 0) is still open
	if fmt.Sprint(h.acked()) != "[]" {
		t.Fatalf("acknowledged %v before the oldest record's file was committed", h.acked())
	}
	h.send(h.p, 3, h.batch("dt=c", 0, 1, 3))
	h.send(h.p, 4, h.batch("dt=d", 0, 1, 4)) // a third open file: the least recently written one (dt=a) is committed
	got := h.committed()
	if len(got) != 2 || !strings.HasPrefix(got[0], "dt=a/") {
		t.Fatalf("files %v", got)
	}
	if fmt.Sprint(h.acked()) != "[0 1 2]" {
		t.Fatalf("acknowledged %v", h.acked())
	}
}

func TestLateData(t *testing.T) {
	// G5: a row for an old day lands in that day's partition.
	h := newHarness(t, layout.Rotation{MaxRecords: 1}, 64)
	h.send(h.p, 0, h.batch("dt=2026-11-25", 0, 1, 0))
	h.send(h.p, 1, h.batch("dt=2026-11-20", 0, 1, 1))
	if got := h.committed(); fmt.Sprint(got) != fmt.Sprint([]string{name("dt=2026-11-20", 0, 1), name("dt=2026-11-25", 0, 0)}) {
		t.Fatalf("files %v", got)
	}
}

func TestRecovery(t *testing.T) {
	h := newHarness(t, layout.Rotation{MaxRecords: 2}, 64)
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0, 1))
	dir := ManifestDir("rows", 0)
	log, st, err := manifest.Load(h.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	stage := func(name string) string {
		_ = h.fs.MkdirAll(StagingDir("rows", 0))
		w, err := h.fs.Create(fs.Join(StagingDir("rows", 0), name))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("PAR1 not really"))
		_ = w.Close()
		return fs.Join(StagingDir("rows", 0), name)
	}
	// testRecovery: an intent whose staging file exists is completed on recovery.
	done := stage("9-000001.parquet")
	in1 := &manifest.Record{Kind: manifest.Intent, Epoch: st.Epoch, Files: []manifest.File{{Table: "t", Generation: 1, Key: envelope.Key("t", 1, "dt=d1"),
		Path: "dt=d1", Staging: done, Final: "t/dt=d1/recovered.parquet", Rows: 3, Sources: []manifest.SourceRange{{Source: "src:id:0", First: 2, Last: 4, Count: 3}}}}}
	// An intent whose staging file is lost is abandoned (its rows are redone).
	in2 := &manifest.Record{Kind: manifest.Intent, Epoch: st.Epoch, Files: []manifest.File{{Table: "t", Generation: 1, Key: envelope.Key("t", 1, "dt=d2"),
		Path: "dt=d2", Staging: fs.Join(StagingDir("rows", 0), "gone.parquet"), Final: "t/dt=d2/gone.parquet", Rows: 1,
		Sources: []manifest.SourceRange{{Source: "src:id:0", First: 5, Last: 5, Count: 1}}}}}
	for _, r := range []*manifest.Record{in1, in2} {
		if err := log.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	orphan := stage("9-000002.parquet") // testGetNextOffsets: junk in staging is ignored and removed

	// A new owner takes the partition.
	p2 := h.newPart()
	h.send(p2, 1, h.batch("dt=d1", 0, 1, 3, 4, 5, 6)) // 3 and 4 came back committed by recovery: dropped
	if ok, _ := fs.Exists(h.fs, "t/dt=d1/recovered.parquet"); !ok {
		t.Fatal("the pending intent was not completed")
	}
	if ok, _ := fs.Exists(h.fs, orphan); ok {
		t.Fatal("the orphaned staging file is still there")
	}
	if ok, _ := fs.Exists(h.fs, "t/dt=d2/gone.parquet"); ok {
		t.Fatal("an abandoned intent was published")
	}
	k := p2.st.Keys[envelope.Key("t", 1, "dt=d1")]
	if k.Rows != 2+3+2 || k.HWM["src:id:0"] != 6 {
		t.Fatalf("after recovery: %+v", k)
	}
	if _, ok := p2.st.Keys[envelope.Key("t", 1, "dt=d2")]; ok {
		t.Fatal("the abandoned intent counts as committed")
	}
	// The first owner is fenced: its next commit fails instead of committing beside the new owner.
	h.send(h.p, 2, h.batch("dt=d1", 0, 1, 7, 8))
	if h.p.fatal == nil || !errors.Is(h.p.fatal, manifest.ErrFenced) {
		t.Fatalf("the old owner was not fenced: %v", h.p.fatal)
	}
	time.Sleep(10 * time.Millisecond)
	if last := h.acked()[len(h.acked())-1]; !strings.HasSuffix(last, "!") {
		t.Fatalf("the fenced owner acknowledged its input: %v", h.acked())
	}
}

func TestBatchAfterALostOne(t *testing.T) {
	// The ingest stage sent b1, b2, b3; b2's produce failed, b3's landed. b3 links to b2's last row, which the
	// commit stage never saw: it is dropped. The ingest stage sends b2 and b3 again; b3's first send may
	// still land late, after the resends: then it is a duplicate.
	h := newHarness(t, layout.Rotation{MaxRecords: 100}, 64)
	h.send(h.p, 0, h.linked("dt=d1", 0, 1, -1, 0, 1))   // b1
	h.send(h.p, 1, h.linked("dt=d1", 0, 1, 3, 4, 5))    // b3, after the lost b2
	h.send(h.p, 2, h.linked("dt=d1", 0, 1, 1, 2, 3))    // b2 again
	h.send(h.p, 3, h.linked("dt=d1", 0, 1, 3, 4, 5))    // b3 again
	h.send(h.p, 4, h.linked("dt=d1", 0, 1, 3, 4, 5, 6)) // b3 with a row more (split differently): 6 is new
	h.send(h.p, 5, h.linked("dt=d1", 1, 1, 7, 8))       // another source: its own chain, 7 never seen
	h.sealOnly(h.p, 6, "dt=d1", 0, 6)
	k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]
	if k == nil || k.Rows != 7 || k.HWM["src:id:0"] != 6 {
		t.Fatalf("committed %+v, want rows 0..6 once each", k)
	}
	if _, ok := k.HWM["src:id:1"]; ok {
		t.Fatal("a batch of another source linked to an unseen row was taken")
	}
	if fmt.Sprint(h.acked()) != "[0 1 2 3 4 5 6]" {
		t.Fatalf("acknowledged %v", h.acked())
	}
}

// zombieAfterCompaction freezes an owner with a file open, lets a new owner take the partition and commit
// long enough to compact the manifest past the old owner's next record number, then wakes the old owner:
// it must neither publish a file nor leave a manifest record that counts.
func zombieAfterCompaction(t *testing.T, f fs.FS) {
	h := newHarnessFS(t, f, layout.Rotation{MaxRecords: 2}, 64, 4)
	zombie := h.newPart()
	h.send(zombie, 0, h.batch("dt=z", 0, 1, 1000)) // claims, and holds row 1000 in an open file
	owner := h.newPart()
	for i := int64(0); i < 30; i++ { // 30 commits, a checkpoint every 4: record 2 is long gone
		h.send(owner, i, h.batch("dt=d1", 0, 1, 2*i, 2*i+1))
	}
	if es, _ := f.ReadDir(ManifestDir("rows", 0)); len(es) > 20 {
		t.Fatalf("the manifest was not compacted: %d records", len(es))
	}
	// The zombie wakes: its file fills and it tries to commit; then it tries to start another file.
	h.send(zombie, 1, h.batch("dt=z", 0, 1, 1001))
	if zombie.fatal == nil {
		t.Fatal("the zombie committed after compaction")
	}
	t.Logf("the zombie was stopped: %v", zombie.fatal)
	zombie2 := h.newPart()
	zombie2.log, zombie2.st, zombie2.epoch, zombie2.staging, zombie2.ready = zombie.log, zombie.st, zombie.epoch, zombie.staging, true
	h.send(zombie2, 2, h.batch("dt=d2", 0, 1, 100, 101))
	if zombie2.fatal == nil {
		t.Fatal("the zombie started and committed a new file")
	}
	// Every file in the table is the owner's, and the manifest counts exactly them.
	files := h.committed()
	_, st, err := manifest.Load(f, ManifestDir("rows", 0))
	if err != nil {
		t.Fatal(err)
	}
	var rows, nfiles int64
	for _, k := range st.Keys {
		rows += k.Rows
		nfiles += k.Files
	}
	if int64(len(files)) != nfiles || rows != 60 || st.Epoch != owner.epoch {
		t.Fatalf("table has %d files; the manifest %d files, %d rows, epoch %d (owner's %d)", len(files), nfiles, rows, st.Epoch, owner.epoch)
	}
	for _, name := range files {
		if !strings.HasPrefix(name, "dt=d1/") {
			t.Fatalf("a file of the zombie was published: %s", name)
		}
	}
}

func TestZombieAfterCompaction(t *testing.T) {
	l, err := fs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	zombieAfterCompaction(t, l)
}

// TestPoisonRowIsADeadLetter: a row that validation let through but the writer refuses (here: bytes that
// are not a record of its schema, and a decimal beyond its precision) goes to the source topic's
// dead-letter topic; the partition goes on, and the record is acknowledged once the dead letter is in Kafka.
func TestPoisonRowIsADeadLetter(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "src.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h := newHarness(t, layout.Rotation{MaxRecords: 100}, 64)
	h.c.cfg.Producer = cl
	dec := `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":0}}]}`
	s, err := avro.Parse(dec)
	if err != nil {
		t.Fatal(err)
	}
	h.c.cfg.Schemas.(fakeSchemas)[3] = s

	good := h.batch("dt=d1", 0, 1, 0)
	bad := func(offset int64, schema int, payload []byte) []byte {
		return envelope.EncodeBatch(&envelope.Batch{Table: "t", Generation: 1, Path: "dt=d1", Partitions: [][2]string{{"dt", "d1"}},
			Source: envelope.Source{Topic: "src", TopicID: "id", Partition: 0}, Prev: -1,
			Rows: []envelope.Row{{Offset: offset, SchemaID: schema, Payload: payload}}})
	}
	h.send(h.p, 0, good)
	h.send(h.p, 1, bad(1, 1, []byte{0xff}))             // not a long
	h.send(h.p, 2, bad(2, 3, []byte{4, 2, 0x27, 0x10})) // id 2, decimal 10000 in decimal(4)
	h.send(h.p, 3, h.batch("dt=d1", 0, 1, 3, 4))        // the decimal schema's file got no row: 3 starts a new one
	h.sealOnly(h.p, 4, "dt=d1", 0, 4)
	if h.p.fatal != nil {
		t.Fatalf("the partition stopped: %v", h.p.fatal)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.acked()) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fmt.Sprint(h.acked()) != "[0 1 2 3 4]" {
		t.Fatalf("acknowledged %v", h.acked())
	}
	if k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]; k == nil || k.Rows != 3 {
		t.Fatalf("committed %+v, want the 3 good rows", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("src.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []string
	for len(got) < 2 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			got = append(got, hdr["minipipe.source.offset"]+" "+hdr["minipipe.error.code"])
			if r.Value[0] != 0 {
				t.Errorf("the dead letter is not in Confluent's framing: %x", r.Value)
			}
		})
	}
	if fmt.Sprint(got) != "[1 unwritable-row 2 unwritable-row]" {
		t.Fatalf("dead letters %v", got)
	}
}

// A file whose seal never comes (its source partition's processor stopped for good) is ended by this stage
// once the table's rotate interval is long past, so its rows stop holding the acknowledgements back.
func TestOverdueSeal(t *testing.T) {
	h := newHarness(t, layout.Rotation{}, 64)
	h.c.cfg.Tables = func(name string) layout.Table {
		return layout.Table{Name: name, Rotation: layout.Rotation{Interval: time.Second}}
	}
	h.send(h.p, 0, h.batch("dt=d1", 0, 1, 0, 1))
	h.p.overdue(time.Now().Add(overdueAfter(time.Second) - time.Second))
	if got := h.committed(); len(got) != 0 || len(h.acked()) != 0 {
		t.Fatalf("ended before it was overdue: %v %v", got, h.acked())
	}
	h.p.overdue(time.Now().Add(overdueAfter(time.Second) + time.Second))
	if got := h.committed(); fmt.Sprint(got) != fmt.Sprint([]string{name("dt=d1", 0, 0)}) || fmt.Sprint(h.acked()) != "[0]" {
		t.Fatalf("overdue: files %v, acknowledged %v", got, h.acked())
	}
	// Its seal, when it does come, ends nothing more.
	h.sealOnly(h.p, 1, "dt=d1", 0, 1)
	if got := h.committed(); len(got) != 1 || fmt.Sprint(h.acked()) != "[0 1]" {
		t.Fatalf("after the late seal: %v %v", got, h.acked())
	}
}

// TestWriteBudget: with more open files' memory than the instance's budget, the partition commits its
// largest files early; every row is committed once, and what stays open fits the budget (twice it while
// every file is below minEarlyBytes, which these are).
func TestWriteBudget(t *testing.T) {
	h := newHarness(t, layout.Rotation{}, 64)
	paths := []string{"dt=a", "dt=b", "dt=c", "dt=d", "dt=e", "dt=f", "dt=g", "dt=h"}
	h.c.cfg.WriteBudget = 24 << 10 // two or three of the harness's small files
	sent := map[string]int64{}
	off := int64(0)
	for round := 0; round < 6; round++ {
		for _, path := range paths {
			var offs []int64
			for i := 0; i < 40; i++ {
				offs = append(offs, off)
				off++
			}
			h.send(h.p, off, h.batch(path, 0, 1, offs...))
			sent[path] += int64(len(offs))
			if total := int64(testutil.ToFloat64(h.c.cfg.Metrics.buffered)); total > 2*h.c.cfg.WriteBudget {
				t.Fatalf("round %d, %s: the open files hold %d bytes, over twice the budget of %d", round, path, total, h.c.cfg.WriteBudget)
			}
		}
	}
	early := testutil.ToFloat64(h.c.cfg.Metrics.unplanned.WithLabelValues("memory"))
	if early == 0 {
		t.Fatal("no file was committed early")
	}
	for _, path := range paths {
		h.sealOnly(h.p, off, path, 0, off)
		off++
	}
	var rows, files int64
	for _, path := range paths {
		k := h.p.st.Keys[envelope.Key("t", 1, path)]
		if k == nil || k.Rows != sent[path] {
			t.Fatalf("%s: committed %+v, sent %d rows", path, k, sent[path])
		}
		rows += k.Rows
		files += int64(k.Files)
	}
	if got := len(h.committed()); int64(got) != files || files <= int64(len(paths)) {
		t.Fatalf("%d files listed, %d in the manifest (want more than one per table partition)", got, files)
	}
	if total := testutil.ToFloat64(h.c.cfg.Metrics.buffered); total != 0 {
		t.Fatalf("%v bytes still counted with every file committed", total)
	}
	t.Logf("%d rows in %d files, %v commits forced by the budget", rows, files, early)
}

// TestWriteBudgetIdlePartition: a partition holding more than its share goes quiet while another starts
// writing; the clock's check commits its largest files even though no record reaches it.
func TestWriteBudgetIdlePartition(t *testing.T) {
	h := newHarness(t, layout.Rotation{}, 64)
	h.c.cfg.WriteBudget = 24 << 10
	p1, p2 := h.p, h.newPart()
	p2.id = 1
	off := int64(0)
	fill := func(p *partWriter, path string) {
		var offs []int64
		for i := 0; i < 40; i++ {
			offs = append(offs, off)
			off++
		}
		h.send(p, off, h.batch(path, int32(p.id), 1, offs...))
	}
	for _, path := range []string{"dt=a", "dt=b", "dt=c", "dt=d", "dt=e"} {
		fill(p1, path) // alone, p1 may hold twice the budget in small files
	}
	held := func(p *partWriter) int64 {
		var n int64
		for _, f := range p.files {
			n += f.w.Buffered()
		}
		return n
	}
	before := held(p1)
	if before <= h.c.cfg.WriteBudget {
		t.Fatalf("p1 holds %d bytes: the test needs more than the budget", before)
	}
	fill(p2, "dt=x")
	fill(p2, "dt=y")
	early := testutil.ToFloat64(h.c.cfg.Metrics.unplanned.WithLabelValues("memory"))
	p1.overdue(time.Now())
	if after := held(p1); after > h.c.cfg.WriteBudget || testutil.ToFloat64(h.c.cfg.Metrics.unplanned.WithLabelValues("memory")) == early {
		t.Fatalf("the idle partition still holds %d bytes (was %d; twice its share is %d)", after, before, h.c.cfg.WriteBudget)
	}
}
