package commit

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/envelope"
)

// dlqHarness is a commit partition whose dead letters go to a kfake broker, with makers of batches of
// source partition 0 and of good rows.
func dlqHarness(t *testing.T) (*harness, func(prev int64, seal bool, rows ...envelope.Row) []byte, func(int64) envelope.Row) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "src.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h := newHarness(t, layout.Rotation{}, 64)
	h.c.cfg.Producer = cl
	mk := func(prev int64, seal bool, rows ...envelope.Row) []byte {
		return envelope.EncodeBatch(&envelope.Batch{Table: "t", Generation: 1, Path: "dt=d1", Partitions: [][2]string{{"dt", "d1"}},
			Source: envelope.Source{Topic: "src", TopicID: "id", Partition: 0}, Prev: prev, Rows: rows, Seal: seal})
	}
	good := func(o int64) envelope.Row {
		p, err := h.codec[1].AppendBinaryFromJSON(nil, []byte(fmt.Sprintf(`{"id":%d}`, o)))
		if err != nil {
			t.Fatal(err)
		}
		return envelope.Row{Offset: o, Timestamp: 1, SchemaID: 1, Payload: p}
	}
	return h, mk, good
}

// A file's last row (the row the seal is on) is a dead letter here; the file commits, its batch is
// acknowledged; the next file's first batch links to the dead letter. After the partition moves, that batch
// must not look like one following a lost batch: the committed file's range covers the dead row.
func TestDeadLetterAtFileEndThenMove(t *testing.T) {
	h, mk, good := dlqHarness(t)
	h.send(h.p, 0, mk(-1, true, good(0), good(1), envelope.Row{Offset: 2, Timestamp: 1, SchemaID: 1, Payload: []byte{0xff}}))
	h.send(h.p, 1, mk(2, false, good(3), good(4)))
	deadline := time.Now().Add(5 * time.Second)
	for len(h.acked()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("acked %v; HWM %d", h.acked(), h.p.st.HWM(envelope.Key("t", 1, "dt=d1"), "src:id:0"))
	// The partition moves: the next owner reads from offset 1 (the first not acknowledged).
	p2 := h.newPart()
	h.send(p2, 1, mk(2, false, good(3), good(4)))
	h.sealOnly(p2, 2, "dt=d1", 0, 4)
	hwm := p2.st.HWM(envelope.Key("t", 1, "dt=d1"), "src:id:0")
	t.Logf("after the move: acked %v; HWM %d; open files %d", h.acked(), hwm, len(p2.files))
	if hwm != 4 {
		t.Errorf("rows 3 and 4 are lost: HWM %d", hwm)
	}
}

// A batch whose only row is a dead letter, with no file open: its record is held until the next file of
// that source commits, so that a move before then redoes it rather than leaving the link to it dangling.
func TestDeadLetterAloneThenMove(t *testing.T) {
	h, mk, good := dlqHarness(t)
	bad := envelope.Row{Offset: 1, Timestamp: 1, SchemaID: 1, Payload: []byte{0xff}}
	h.send(h.p, 0, mk(-1, true, good(0)))
	h.send(h.p, 1, mk(0, false, bad))
	h.send(h.p, 2, mk(1, false, good(2)))
	time.Sleep(100 * time.Millisecond)
	if fmt.Sprint(h.acked()) != "[0]" {
		t.Fatalf("acknowledged %v: the dead letter's record must wait for the next file", h.acked())
	}
	p2 := h.newPart()
	h.send(p2, 1, mk(0, false, bad))
	h.send(p2, 2, mk(1, false, good(2)))
	h.sealOnly(p2, 3, "dt=d1", 0, 2)
	if hwm := p2.st.HWM(envelope.Key("t", 1, "dt=d1"), "src:id:0"); hwm != 2 {
		t.Fatalf("row 2 is lost: HWM %d", hwm)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.acked()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fmt.Sprint(h.acked()) != "[0 1 2 3]" {
		t.Fatalf("the new owner acknowledged %v", h.acked())
	}
}
