package iceberg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	icehive "github.com/apache/iceberg-go/catalog/hive"
	"github.com/apache/iceberg-go/table"
	hms "github.com/beltran/gohive/hive_metastore"

	"github.com/minipipe/minipipe/sinks/hive"
)

// hiveClient is iceberg-go's Hive client on the calls Hive 4 serves: iceberg-go's own calls get_table,
// create_table and alter_table, which Hive 4.1 no longer has ("Invalid method name"). It shares
// sinks/hive's connection handling (one call at a time, reconnect after a transport error, timeouts).
//
// Without locks (the default), Lock grants at once without asking the metastore and the commit's safety is
// Hive 4's check in alter_table (HIVE-26882, Iceberg's "lock-free" Hive commits): the metadata location is
// swapped only if it is still the one the new metadata was built on. A refused swap is a clean conflict
// (table.ErrCommitFailed). The metastore's own table locks serialize writers that take them too, but on a
// Derby-backed metastore its lock tables turn into row-lock waits of tens of seconds under contention.
type hiveClient struct {
	c     *hive.Catalog
	locks bool
}

// noLock is the id of a lock granted without the metastore.
const noLock = -1

var _ icehive.HiveClient = hiveClient{}

func (h hiveClient) Close() error { return nil } // the catalog owns the connection

func (h hiveClient) GetDatabase(ctx context.Context, name string) (db *hms.Database, err error) {
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		db, err = cl.GetDatabase(ctx, name)
		return err
	})
	return db, err
}

func (h hiveClient) CreateDatabase(ctx context.Context, db *hms.Database) error {
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.CreateDatabase(ctx, db)
	})
}

func (h hiveClient) AlterDatabase(ctx context.Context, name string, db *hms.Database) error {
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.AlterDatabase(ctx, name, db)
	})
}

func (h hiveClient) DropDatabase(ctx context.Context, name string, deleteData, cascade bool) error {
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.DropDatabase(ctx, name, deleteData, cascade)
	})
}

func (h hiveClient) GetAllDatabases(ctx context.Context) (out []string, err error) {
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		out, err = cl.GetAllDatabases(ctx)
		return err
	})
	return out, err
}

func (h hiveClient) GetTable(ctx context.Context, db, name string) (t *hms.Table, err error) {
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		r, err := cl.GetTableReq(ctx, &hms.GetTableRequest{DbName: db, TblName: name})
		if err != nil {
			return err
		}
		t = r.Table
		return nil
	})
	return t, err
}

func (h hiveClient) CreateTable(ctx context.Context, t *hms.Table) error {
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.CreateTableReq(ctx, &hms.CreateTableRequest{Table: t})
	})
}

// AlterTable swaps the table's metadata location only if the metastore still holds the one the new
// metadata was built on (Hive's expected-parameter check, beside the table lock iceberg-go takes): a
// writer whose lock expired cannot overwrite another's commit.
func (h hiveClient) AlterTable(ctx context.Context, db, name string, t *hms.Table) error {
	req := hms.NewAlterTableRequest()
	req.DbName, req.TableName, req.Table = db, name, t
	prev := t.Parameters["previous_metadata_location"]
	if prev == "" && !h.locks {
		return fmt.Errorf("altering %s.%s without the metadata location it replaces: refused (no lock, nothing to check)", db, name)
	}
	if prev != "" {
		req.EnvironmentContext = &hms.EnvironmentContext{Properties: map[string]string{
			"expected_parameter_key":   "metadata_location",
			"expected_parameter_value": prev,
		}}
	}
	err := h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		_, err := cl.AlterTableReq(ctx, req)
		return err
	})
	var me *hms.MetaException
	if errors.As(err, &me) && strings.Contains(me.Message, "has been modified") {
		// Hive refused the swap: another writer committed first; nothing of ours is in the table.
		return fmt.Errorf("%w: %w", table.ErrCommitFailed, err)
	}
	return err
}

func (h hiveClient) DropTable(ctx context.Context, db, name string, deleteData bool) error {
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.DropTable(ctx, db, name, deleteData)
	})
}

func (h hiveClient) GetTables(ctx context.Context, db, pattern string) (out []string, err error) {
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		out, err = cl.GetTables(ctx, db, pattern)
		return err
	})
	return out, err
}

func (h hiveClient) Lock(ctx context.Context, req *hms.LockRequest) (r *hms.LockResponse, err error) {
	if !h.locks {
		return &hms.LockResponse{Lockid: noLock, State: hms.LockState_ACQUIRED}, nil
	}
	if req.User == "" {
		req.User = "minipipe"
	}
	if req.Hostname == "" {
		req.Hostname, _ = os.Hostname()
	}
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		r, err = cl.Lock(ctx, req)
		return err
	})
	return r, err
}

func (h hiveClient) CheckLock(ctx context.Context, id int64) (r *hms.LockResponse, err error) {
	if id == noLock {
		return &hms.LockResponse{Lockid: noLock, State: hms.LockState_ACQUIRED}, nil
	}
	err = h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		r, err = cl.CheckLock(ctx, &hms.CheckLockRequest{Lockid: id})
		return err
	})
	return r, err
}

func (h hiveClient) Unlock(ctx context.Context, id int64) error {
	if id == noLock {
		return nil
	}
	return h.c.Call(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		return cl.Unlock(ctx, &hms.UnlockRequest{Lockid: id})
	})
}
