package commit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/sinks/hdfs"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestZombieAfterCompactionOnHDFS: the zombie fence on a real NameNode and DataNode.
func TestZombieAfterCompactionOnHDFS(t *testing.T) {
	base := testkit.HDFS(t)
	f, err := hdfs.Open(fmt.Sprintf("%s/zombie-%d", base, time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.RemoveAll("."); f.Close() })
	commit.ZombieAfterCompaction(t, f)
}
