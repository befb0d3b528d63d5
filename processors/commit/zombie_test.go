package commit

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
	"github.com/minipipe/minipipe/sinks/fs"
)

// Regression tests from an adversarial review: an owner that reads the manifest and stalls before it
// claims, while a newer owner commits and compacts past the record number it wanted.

// pauseFS blocks the first MkdirAll of a staging directory until released.
type pauseFS struct {
	fs.FS
	armed   chan struct{} // closed when the paused call arrives
	release chan struct{}
	once    bool
}

func (p *pauseFS) MkdirAll(name string) error {
	if p.once && strings.Contains(name, "_minipipe/staging") {
		p.once = false
		close(p.armed)
		<-p.release
	}
	return p.FS.MkdirAll(name)
}

func newPaused(t *testing.T) (*fs.Local, *pauseFS) {
	l, err := fs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l, &pauseFS{FS: l, armed: make(chan struct{}), release: make(chan struct{}), once: true}
}

// TestStalledClaimAfterCompaction: the stalled owner wakes, finds its record number free and claims
// there; it must notice the newer records and claim anew (or give up), never publish beside the owner.
func TestStalledClaimAfterCompaction(t *testing.T) {
	_, pf := newPaused(t)
	h := newHarnessFS(t, pf, layout.Rotation{MaxRecords: 2}, 64, 4)
	stalled := h.newPart()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.send(stalled, 0, h.batch("dt=z", 0, 1, 1000, 1001)) // 2 rows: a full file, committed at once
	}()
	<-pf.armed
	owner := h.newPart()
	for i := int64(0); i < 30; i++ {
		h.send(owner, i, h.batch("dt=d1", 0, 1, 2*i, 2*i+1))
	}
	close(pf.release)
	<-done
	if stalled.epoch <= owner.epoch && stalled.fatal == nil {
		t.Fatalf("the stalled owner claimed epoch %d (the owner's is %d) and goes on", stalled.epoch, owner.epoch)
	}
	// Whatever it did, the owner's manifest is whole and counts every file in the table.
	h.send(owner, 31, h.batch("dt=d1", 0, 1, 100, 101))
	if owner.fatal == nil && stalled.epoch > owner.epoch {
		t.Log("the stalled owner became the newest owner (a legitimate takeover); the old one was fenced on its next commit")
	}
}

// TestSameEpochZombieCannotPassItsFileOff: the stalled owner must not publish a file under a name the
// owner also writes, which the owner's recovery would then count with the owner's rows.
func TestSameEpochZombieCannotPassItsFileOff(t *testing.T) {
	l, pf := newPaused(t)
	h := newHarnessFS(t, pf, layout.Rotation{MaxRecords: 3}, 64, 4)
	stalled := h.newPart()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.send(stalled, 0, h.batch("dt=z", 0, 1, 1000))
	}()
	<-pf.armed
	owner := h.newPart()
	h.send(owner, 0, h.batch("dt=z", 0, 1, 1000, 1001)) // the same record; its file stays open (3 rows rotate)
	for i := int64(1); i <= 30; i++ {
		h.send(owner, i, h.batch("dt=d1", 0, 1, 3*i, 3*i+1, 3*i+2))
	}
	close(pf.release)
	<-done
	stalled.mu.Lock() // revoked: it commits what it has open
	for _, f := range stalled.files {
		_ = stalled.commit(f)
	}
	stalled.mu.Unlock()
	h.send(owner, 31, h.batch("dt=z", 0, 1, 1002)) // the owner's file fills and commits
	next := h.newPart()
	h.send(next, 32, h.batch("dt=d2", 0, 1, 5000))
	k := next.st.Keys[envelope.Key("t", 1, "dt=z")]
	b, err := l.ReadFile("t/dt=z/" + envelope.FileID(envelope.Source{Topic: "src", TopicID: "id", Partition: 0}, 1000) + ".parquet")
	if err != nil {
		t.Fatalf("the owner's file: %v (owner: %v)", err, owner.fatal)
	}
	r, err := pqfile.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// The file of that name is the one the manifest counts, and its high-water mark is the file's last row:
	// rows the manifest does not count are redone from Kafka, none is passed off as committed.
	if k == nil || k.Rows != r.NumRows() || k.HWM["src:id:0"] != 1000+k.Rows-1 {
		t.Fatalf("the manifest counts %+v for dt=z; its file holds %d rows", k, r.NumRows())
	}
	t.Logf("dt=z: %d rows committed, in a file of %d rows (the rest is redone)", k.Rows, r.NumRows())
}

// TestDeadLetterBeforeLaterRowsCommit: a poison row between good rows of one batch; the dead-letter topic
// is not there yet. The good rows must not commit past it (its offset would be below the high-water mark of
// the redo) until its dead letter is in Kafka; revoked meanwhile, the next owner dead-letters it again.
func TestDeadLetterBeforeLaterRowsCommit(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1)) // no src.dlq yet
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h := newHarness(t, layout.Rotation{MaxRecords: 3}, 64)
	h.c.cfg.Producer = cl
	ctx, cancel := context.WithCancel(context.Background())
	h.p.ctx = ctx
	mk := func() []byte {
		b := &envelope.Batch{Table: "t", Generation: 1, Path: "dt=d1", Partitions: [][2]string{{"dt", "d1"}},
			Source: envelope.Source{Topic: "src", TopicID: "id", Partition: 0}, Prev: -1}
		good, _ := envelope.DecodeBatch(h.batch("dt=d1", 0, 1, 0, 2, 3))
		b.Rows = append(b.Rows, good.Rows[0], envelope.Row{Offset: 1, SchemaID: 1, Payload: []byte{0xff}}, good.Rows[1], good.Rows[2])
		b.Seal = true
		return envelope.EncodeBatch(b)
	}
	go func() { time.Sleep(500 * time.Millisecond); cancel() }() // revoked while the dead letter cannot land
	h.send(h.p, 0, mk())
	if k := h.p.st.Keys[envelope.Key("t", 1, "dt=d1")]; k != nil && k.HWM["src:id:0"] >= 1 {
		t.Fatalf("rows after the poison row committed (high-water mark %d) before its dead letter landed", k.HWM["src:id:0"])
	}
	// The topic is there now; the next owner redoes the batch: the poison row is a dead letter, the rest rows.
	cluster2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "src.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(cluster2.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	h.c.cfg.Producer = cl2
	next := h.newPart()
	h.send(next, 0, mk())
	if next.fatal != nil {
		t.Fatalf("the next owner stopped: %v", next.fatal)
	}
	if k := next.st.Keys[envelope.Key("t", 1, "dt=d1")]; k == nil || k.Rows != 3 {
		t.Fatalf("committed %+v, want rows 0, 2 and 3", k)
	}
}
