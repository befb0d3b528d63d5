package commit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/sinks/manifest"
)

type gokaCtx = goka.Context

// lateCtx is the goka context of one message of commit partition 0.
type lateCtx struct {
	gokaCtx
	ctx    context.Context
	off    int64
	mu     *sync.Mutex
	commit map[int64]error
	order  *[]int64
}

func (c *lateCtx) Partition() int32         { return 0 }
func (c *lateCtx) Offset() int64            { return c.off }
func (c *lateCtx) Context() context.Context { return c.ctx }
func (c *lateCtx) DeferCommit() func(error) {
	return func(err error) {
		c.mu.Lock()
		c.commit[c.off] = err
		*c.order = append(*c.order, c.off)
		c.mu.Unlock()
	}
}

// TestLateMessagesAfterRevocation: goka may hand over a message or two after an assignment's context is
// done, even after its writer ended the revocation. They go to that writer, which commits what they bring
// before the call returns, under the epoch it claimed (no second claim), and acknowledges them in order
// after everything before them. A new writer with its own acknowledgement queue would let the partition's
// offset pass a message the first one still held: a lost row.
func TestLateMessagesAfterRevocation(t *testing.T) {
	h := newHarness(t, layout.Rotation{}, 64)
	var mu sync.Mutex
	commits := map[int64]error{}
	var order []int64
	assign, revoke := context.WithCancel(context.Background())
	send := func(off int64, value []byte) {
		h.c.process(&lateCtx{ctx: assign, off: off, mu: &mu, commit: commits, order: &order}, value)
	}
	send(0, h.batch("dt=a", 0, 1, 1, 2))
	send(1, h.batch("dt=b", 0, 1, 1))
	revoke()
	// The writer's revocation commits both open files and ends.
	deadline := time.Now().Add(10 * time.Second)
	for h.c.parts.Running() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h.c.parts.Running() != 0 {
		t.Fatal("the revoked writer did not end")
	}
	// Late: rows of an open file's table partition and source, then a seal without a file.
	send(2, h.batch("dt=a", 0, 1, 3, 4))
	send(3, h.batch("dt=b", 0, 1, 2))
	mu.Lock()
	got := append([]int64(nil), order...)
	for off, err := range commits {
		if err != nil {
			t.Errorf("offset %d acknowledged with %v", off, err)
		}
	}
	mu.Unlock()
	if len(got) != 4 || got[0] != 0 || got[1] != 1 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("acknowledged %v, want [0 1 2 3] in order", got)
	}
	files := strings.Join(h.committed(), " ")
	for _, want := range []string{name("dt=a", 0, 1), name("dt=a", 0, 3), name("dt=b", 0, 1), name("dt=b", 0, 2)} {
		if !strings.Contains(files, want) {
			t.Errorf("committed %s, want %s among them", files, want)
		}
	}
	_, st, err := manifest.Load(h.fs, ManifestDir("rows", 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 1 {
		t.Fatalf("manifest epoch %d: a late message claimed the partition again", st.Epoch)
	}
	if n := st.HWM("t@1/dt=a", "src:id:0"); n != 4 {
		t.Fatalf("high-water mark of dt=a %d, want 4", n)
	}
}

// TestLateFirstMessage: the first message of an assignment arriving after it was revoked is recovered for
// and committed before its call returns (no one else owns the partition before this member rejoins).
func TestLateFirstMessage(t *testing.T) {
	h := newHarness(t, layout.Rotation{}, 64)
	var mu sync.Mutex
	commits := map[int64]error{}
	var order []int64
	assign, revoke := context.WithCancel(context.Background())
	revoke()
	h.c.process(&lateCtx{ctx: assign, off: 7, mu: &mu, commit: commits, order: &order}, h.batch("dt=a", 0, 1, 1))
	mu.Lock()
	err, ok := commits[7]
	mu.Unlock()
	if !ok || err != nil {
		t.Fatalf("the late first message: acknowledged %v, error %v", ok, err)
	}
	if files := h.committed(); len(files) != 1 || files[0] != name("dt=a", 0, 1) {
		t.Fatalf("committed %v", files)
	}
}
