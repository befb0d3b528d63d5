package hive_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hive_metastore"

	"github.com/minipipe/minipipe/testkit"
)

// TestMetastoreLocks: the project's metastore serves Hive's table locks (its Derby database is made by Hive's own
// schema script, with the transaction and lock tables that DataNucleus does not make): an exclusive lock is
// granted, a second one on the same table waits, and is granted once the first is released. Iceberg's Hive
// catalog takes this lock for every commit.
func TestMetastoreLocks(t *testing.T) {
	uri := testkit.SharedMetastore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second}
	tr := thrift.NewTBufferedTransport(thrift.NewTSocketConf(strings.TrimPrefix(uri, "thrift://"), cfg), 64<<10)
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c := hive_metastore.NewThriftHiveMetastoreClientFactory(tr, thrift.NewTBinaryProtocolFactoryConf(cfg))
	table := "lock_test_" + strings.ToLower(testkit.Topic(t, "t")[1:8])
	lock := func() *hive_metastore.LockResponse {
		t.Helper()
		r, err := c.Lock(ctx, &hive_metastore.LockRequest{User: "minipipe", Hostname: "localhost",
			Component: []*hive_metastore.LockComponent{{Type: hive_metastore.LockType_EXCLUSIVE, Level: hive_metastore.LockLevel_TABLE,
				Dbname: "default", Tablename: &table}}})
		if err != nil {
			t.Fatalf("lock: %v (a metastore without its lock tables fails here)", err)
		}
		return r
	}
	first := lock()
	if first.State != hive_metastore.LockState_ACQUIRED {
		t.Fatalf("the first lock: %v", first.State)
	}
	second := lock()
	if second.State != hive_metastore.LockState_WAITING {
		t.Fatalf("a second exclusive lock on the same table: %v, want WAITING", second.State)
	}
	if err := c.Unlock(ctx, &hive_metastore.UnlockRequest{Lockid: first.Lockid}); err != nil {
		t.Fatal(err)
	}
	r, err := c.CheckLock(ctx, &hive_metastore.CheckLockRequest{Lockid: second.Lockid})
	if err != nil || r.State != hive_metastore.LockState_ACQUIRED {
		t.Fatalf("the second lock after the first was released: %v %v", r, err)
	}
	if err := c.Unlock(ctx, &hive_metastore.UnlockRequest{Lockid: second.Lockid}); err != nil {
		t.Fatal(err)
	}
}
