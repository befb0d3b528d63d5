// Package hive keeps a Hive Metastore in step with the warehouse: each table as an EXTERNAL Parquet table
// with its location and partition keys, each committed partition, each column a schema version adds. It
// speaks the metastore's Thrift API through gohive's generated hive_metastore client.
//
// The commit stage asks Changes for what a commit needs, records that in the manifest intent together with
// the files, and applies it after the commit with Apply, in order, retrying until it succeeds: the
// metastore being down never blocks data and never makes minipipe forget a change. Every change is
// idempotent (create if missing, add partitions if not exists, add only missing columns), so applying one
// twice, or after someone else did, is harmless.
//
// Hive 4 metastores want the *_req methods (create_table_req, get_table_req, alter_table_req,
// add_partitions_req); an older metastore answers those with "unknown method", after which the client uses
// the older calls for the rest of the connection.
package hive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/thrift/lib/go/thrift"
	hms "github.com/beltran/gohive/hive_metastore"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// The change operations recorded in the manifest.
const (
	// OpTable makes sure the table exists with at least these columns (creating it, or adding the columns
	// a newer schema brought, with CASCADE so old partitions show them too).
	OpTable = "table"
	// OpPartition makes sure a partition is registered.
	OpPartition = "partition"
	// OpRelocate points a partition at another directory (a compaction's), registering it if missing.
	OpRelocate = "relocate"
)

// Parquet's Hive classes.
const (
	parquetSerDe  = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
	parquetInput  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
	parquetOutput = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
)

// Column is a Hive column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Config configures the catalog.
type Config struct {
	// URI is the metastore's address, thrift://host:port.
	URI string
	// Database holds the tables; created if missing.
	Database string
	// DatabaseLocation is where a database minipipe creates lives (the warehouse root).
	DatabaseLocation string
	// Generation returns a table's current generation (replay); changes for other generations are not
	// applied (a replay's table is registered when it is swapped in). Nil: every change applies.
	Generation func(table string) (int, error)
	// Timeout bounds each metastore call (default 30s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Catalog is a Hive Metastore catalog.
type Catalog struct {
	cfg  Config
	addr string

	mu     sync.Mutex
	conn   *conn
	legacy bool // the metastore lacks the *_req methods
}

// New prepares a catalog; it connects on first use.
func New(cfg Config) (*Catalog, error) {
	u, err := url.Parse(cfg.URI)
	if err != nil || u.Scheme != "thrift" || u.Host == "" {
		return nil, fmt.Errorf("hive metastore %q: want thrift://host:port", cfg.URI)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "9083")
	}
	if cfg.Database == "" {
		cfg.Database = "default"
	}
	if err := ValidName(cfg.Database); err != nil {
		return nil, fmt.Errorf("hive database: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Log = cfg.Log.With("component", "hive", "metastore", addr, "database", cfg.Database)
	return &Catalog{cfg: cfg, addr: addr}, nil
}

// Database is the database the tables are in.
func (c *Catalog) Database() string { return c.cfg.Database }

// ValidName checks a database or table name: Hive's identifiers, lower case.
func ValidName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("name %q: want 1 to 128 characters", name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r == '_' || r >= '0' && r <= '9' && i > 0) {
			return fmt.Errorf("name %q: only a-z, 0-9 and _ (not first), in lower case", name)
		}
	}
	return nil
}

type conn struct {
	t      thrift.TTransport
	client *hms.ThriftHiveMetastoreClient
	dbOK   bool
}

func (c *Catalog) connect() (*conn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: c.cfg.Timeout}
	sock := thrift.NewTSocketConf(c.addr, cfg)
	if err := sock.Open(); err != nil {
		return nil, &Unavailable{Err: fmt.Errorf("connecting to the metastore at %s: %w", c.addr, err)}
	}
	t := thrift.NewTBufferedTransport(sock, 64<<10)
	pf := thrift.NewTBinaryProtocolFactoryConf(cfg)
	c.conn = &conn{t: t, client: hms.NewThriftHiveMetastoreClientFactory(t, pf)}
	return c.conn, nil
}

func (c *Catalog) drop() {
	if c.conn != nil {
		_ = c.conn.t.Close()
		c.conn = nil
	}
}

// Unavailable is a metastore that cannot be reached or failed in transit: retry later.
type Unavailable struct{ Err error }

func (e *Unavailable) Error() string { return e.Err.Error() }
func (e *Unavailable) Unwrap() error { return e.Err }

// IsRetriable reports whether err is worth retrying as is (every metastore error is, to the applier;
// this tells transport failures from refusals in logs and metrics).
func IsRetriable(err error) bool {
	var u *Unavailable
	return errors.As(err, &u)
}

func isUnknownMethod(err error) bool {
	var ae thrift.TApplicationException
	if errors.As(err, &ae) {
		return ae.TypeId() == thrift.UNKNOWN_METHOD
	}
	return false
}

func isNoSuchObject(err error) bool {
	var e *hms.NoSuchObjectException
	return errors.As(err, &e)
}

func isAlreadyExists(err error) bool {
	var e *hms.AlreadyExistsException
	return errors.As(err, &e)
}

// isTransport tells a broken connection (reconnect) from an answer of the metastore.
func isTransport(err error) bool {
	var te thrift.TTransportException
	var pe thrift.TProtocolException
	var ne net.Error
	return errors.As(err, &te) || errors.As(err, &pe) || errors.As(err, &ne)
}

// do runs fn with a connection, dropping the connection after a transport error.
func (c *Catalog) do(ctx context.Context, fn func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error) error {
	cn, err := c.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if !cn.dbOK {
		if err := c.ensureDatabase(ctx, cn.client); err != nil {
			if isTransport(err) {
				c.drop()
				return &Unavailable{Err: err}
			}
			return err
		}
		cn.dbOK = true
	}
	if err := fn(ctx, cn.client); err != nil {
		if isTransport(err) {
			c.drop()
			return &Unavailable{Err: err}
		}
		return err
	}
	return nil
}

func (c *Catalog) ensureDatabase(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
	_, err := cl.GetDatabase(ctx, c.cfg.Database)
	if err == nil {
		return nil
	}
	if !isNoSuchObject(err) {
		return fmt.Errorf("get database %s: %w", c.cfg.Database, err)
	}
	db := &hms.Database{Name: c.cfg.Database, Description: "tables written by minipipe", Parameters: map[string]string{"created_by": "minipipe"}}
	if c.cfg.DatabaseLocation != "" {
		db.LocationUri = strings.TrimSuffix(c.cfg.DatabaseLocation, "/") + "/_minipipe/hive/" + c.cfg.Database + ".db"
	}
	if err := cl.CreateDatabase(ctx, db); err != nil && !isAlreadyExists(err) {
		// Another client created it meanwhile (a Derby-backed metastore says so with a MetaException).
		if _, gerr := cl.GetDatabase(ctx, c.cfg.Database); gerr == nil {
			return nil
		}
		return fmt.Errorf("create database %s: %w", c.cfg.Database, err)
	}
	c.cfg.Log.Info("created the metastore database")
	return nil
}

// --- changes ------------------------------------------------------------------------------------------

// Changes returns what committing a file of this table partition needs: the table (with the file's
// columns) when the partition or the schema is new to this writer, and the partition when it is new.
func (c *Catalog) Changes(table string, gen int, location string, partitions [][2]string, cols *arrow.Schema, schemaID int, newPartition, newSchema bool) []manifest.CatalogChange {
	var out []manifest.CatalogChange
	partKeys := make([]string, len(partitions))
	for i, p := range partitions {
		partKeys[i] = p[0]
	}
	if newPartition || newSchema {
		hc := HiveColumns(cols)
		b, _ := json.Marshal(struct {
			Columns       []Column `json:"columns"`
			PartitionKeys []string `json:"partition_keys,omitempty"`
		}{hc, partKeys})
		out = append(out, manifest.CatalogChange{Op: OpTable, Table: table, Generation: gen, Location: location, Columns: b, SchemaID: schemaID})
	}
	if newPartition && len(partitions) > 0 {
		vals := map[string]string{}
		for _, p := range partitions {
			vals[p[0]] = p[1]
		}
		loc := strings.TrimSuffix(location, "/") + "/" + layout.Path(partitions)
		b, _ := json.Marshal(struct {
			PartitionKeys []string `json:"partition_keys"`
			Location      string   `json:"location"`
		}{partKeys, loc})
		out = append(out, manifest.CatalogChange{Op: OpPartition, Table: table, Generation: gen, Location: location, Partition: vals, Columns: b, SchemaID: schemaID})
	}
	return out
}

// RelocateChange is the change that points a table partition at location (a compaction's directory) from
// the one at from.
func (c *Catalog) RelocateChange(table string, gen int, partitions [][2]string, location, from string) manifest.CatalogChange {
	partKeys := make([]string, len(partitions))
	vals := map[string]string{}
	for i, p := range partitions {
		partKeys[i] = p[0]
		vals[p[0]] = p[1]
	}
	b, _ := json.Marshal(partitionSpec{PartitionKeys: partKeys, Location: location, From: from})
	return manifest.CatalogChange{Op: OpRelocate, Table: table, Generation: gen, Location: location, Partition: vals, Columns: b}
}

// HiveColumns maps a file's Arrow schema to Hive columns.
func HiveColumns(s *arrow.Schema) []Column {
	out := make([]Column, 0, s.NumFields())
	for _, f := range s.Fields() {
		out = append(out, Column{Name: strings.ToLower(f.Name), Type: HiveType(f.Type)})
	}
	return out
}

// HiveType is the Hive type of an Arrow type as minipipe writes it to Parquet.
func HiveType(t arrow.DataType) string {
	switch t := t.(type) {
	case *arrow.BooleanType:
		return "boolean"
	case *arrow.Int32Type:
		return "int"
	case *arrow.Int64Type:
		return "bigint"
	case *arrow.Float32Type:
		return "float"
	case *arrow.Float64Type:
		return "double"
	case *arrow.StringType:
		return "string"
	case *arrow.BinaryType, *arrow.FixedSizeBinaryType:
		return "binary"
	case *arrow.Date32Type:
		return "date"
	case *arrow.TimestampType:
		return "timestamp"
	case *arrow.Time32Type:
		return "int" // Hive has no TIME: milliseconds of the day
	case *arrow.Time64Type:
		return "bigint" // microseconds of the day
	case *arrow.Decimal128Type:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case *arrow.ListType:
		return "array<" + HiveType(t.Elem()) + ">"
	case *arrow.MapType:
		return "map<" + HiveType(t.KeyType()) + "," + HiveType(t.ItemType()) + ">"
	case *arrow.StructType:
		parts := make([]string, t.NumFields())
		for i, f := range t.Fields() {
			parts[i] = strings.ToLower(f.Name) + ":" + HiveType(f.Type)
		}
		return "struct<" + strings.Join(parts, ",") + ">"
	}
	return "string"
}

// Name is the metastore table of a table's generation: the table itself for the current generation.
func Name(table string) string { return table }

// --- applying -----------------------------------------------------------------------------------------

// Apply applies changes in order; each is idempotent. A change for a generation other than the table's
// current one is skipped (a replay registers its generation when it swaps it in).
func (c *Catalog) Apply(ctx context.Context, changes []manifest.CatalogChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		if c.cfg.Generation != nil {
			cur, err := c.cfg.Generation(ch.Table)
			if err != nil {
				return fmt.Errorf("current generation of %s: %w", ch.Table, err)
			}
			if ch.Generation != 0 && ch.Generation != cur {
				continue
			}
		}
		var err error
		switch ch.Op {
		case OpTable:
			err = c.applyTable(ctx, ch)
		case OpPartition:
			err = c.applyPartition(ctx, ch)
		case OpRelocate:
			err = c.applyRelocate(ctx, ch)
		default:
			// Never recorded as applied: a change this version does not know is one it would lose.
			err = fmt.Errorf("unknown catalog change %q (written by a newer minipipe? upgrade this instance)", ch.Op)
		}
		if err != nil {
			return fmt.Errorf("hive %s %s.%s: %w", ch.Op, c.cfg.Database, ch.Table, err)
		}
	}
	return nil
}

type tableSpec struct {
	Columns       []Column `json:"columns"`
	PartitionKeys []string `json:"partition_keys"`
}

func (c *Catalog) getTable(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, name string) (*hms.Table, error) {
	if !c.legacy {
		r, err := cl.GetTableReq(ctx, &hms.GetTableRequest{DbName: c.cfg.Database, TblName: name})
		if err == nil {
			return r.Table, nil
		}
		if !isUnknownMethod(err) {
			return nil, err
		}
		c.legacy = true
		c.cfg.Log.Info("the metastore predates get_table_req; using the older calls")
	}
	return cl.GetTable(ctx, c.cfg.Database, name)
}

func (c *Catalog) applyTable(ctx context.Context, ch manifest.CatalogChange) error {
	var spec tableSpec
	if err := json.Unmarshal(ch.Columns, &spec); err != nil {
		return fmt.Errorf("malformed change: %w", err)
	}
	name := Name(ch.Table)
	if err := ValidName(name); err != nil {
		return err
	}
	return c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		t, err := c.getTable(ctx, cl, name)
		if err != nil && !isNoSuchObject(err) {
			return fmt.Errorf("get table: %w", err)
		}
		if t == nil || err != nil {
			return c.createTable(ctx, cl, name, ch, spec)
		}
		return c.alterTable(ctx, cl, t, ch, spec)
	})
}

func fieldSchemas(cols []Column) []*hms.FieldSchema {
	out := make([]*hms.FieldSchema, len(cols))
	for i, col := range cols {
		out[i] = &hms.FieldSchema{Name: col.Name, Type: col.Type}
	}
	return out
}

func storage(location string, cols []Column) *hms.StorageDescriptor {
	return &hms.StorageDescriptor{
		Cols: fieldSchemas(cols), Location: location, InputFormat: parquetInput, OutputFormat: parquetOutput,
		SerdeInfo:  &hms.SerDeInfo{Name: "parquet", SerializationLib: parquetSerDe, Parameters: map[string]string{"serialization.format": "1"}},
		NumBuckets: -1, BucketCols: []string{}, SortCols: []*hms.Order{}, Parameters: map[string]string{},
	}
}

func (c *Catalog) createTable(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, name string, ch manifest.CatalogChange, spec tableSpec) error {
	pk := make([]Column, len(spec.PartitionKeys))
	for i, k := range spec.PartitionKeys {
		pk[i] = Column{Name: k, Type: "string"}
	}
	t := &hms.Table{
		TableName: name, DbName: c.cfg.Database, Owner: "minipipe", CreateTime: int32(time.Now().Unix()),
		Sd: storage(ch.Location, spec.Columns), PartitionKeys: fieldSchemas(pk), TableType: "EXTERNAL_TABLE",
		Parameters: map[string]string{
			"EXTERNAL": "TRUE", "minipipe.schema_id": strconv.Itoa(ch.SchemaID), "minipipe.generation": strconv.Itoa(ch.Generation),
			"created_by": "minipipe", "parquet.compression": "SNAPPY",
		},
	}
	var err error
	if !c.legacy {
		err = cl.CreateTableReq(ctx, &hms.CreateTableRequest{Table: t})
		if isUnknownMethod(err) {
			c.legacy = true
			err = cl.CreateTable(ctx, t)
		}
	} else {
		err = cl.CreateTable(ctx, t)
	}
	if isAlreadyExists(err) {
		// Someone else created it meanwhile: make sure it has the columns.
		got, gerr := c.getTable(ctx, cl, name)
		if gerr != nil {
			return gerr
		}
		return c.alterTable(ctx, cl, got, ch, spec)
	}
	if err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	c.cfg.Log.Info("created the metastore table", "table", name, "location", ch.Location, "columns", len(spec.Columns))
	return nil
}

// alterTable adds the columns the table lacks and widens the types a newer schema widened; it never
// drops a column (older files still hold it) nor narrows one.
func (c *Catalog) alterTable(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, t *hms.Table, ch manifest.CatalogChange, spec tableSpec) error {
	if t.Sd == nil {
		return fmt.Errorf("table %s has no storage descriptor", t.TableName)
	}
	recorded, _ := strconv.Atoi(t.Parameters["minipipe.schema_id"])
	newer := ch.SchemaID > recorded
	have := map[string]int{}
	for i, f := range t.Sd.Cols {
		have[strings.ToLower(f.Name)] = i
	}
	partCols := map[string]bool{}
	for _, k := range t.PartitionKeys {
		partCols[strings.ToLower(k.Name)] = true
	}
	changed := false
	var added []string
	for _, col := range spec.Columns {
		if partCols[col.Name] {
			continue
		}
		i, ok := have[col.Name]
		if !ok {
			t.Sd.Cols = append(t.Sd.Cols, &hms.FieldSchema{Name: col.Name, Type: col.Type})
			have[col.Name] = len(t.Sd.Cols) - 1
			added = append(added, col.Name)
			changed = true
			continue
		}
		if newer && !strings.EqualFold(t.Sd.Cols[i].Type, col.Type) && widens(t.Sd.Cols[i].Type, col.Type) {
			t.Sd.Cols[i].Type = col.Type
			changed = true
		}
	}
	if newer {
		if t.Parameters == nil {
			t.Parameters = map[string]string{}
		}
		t.Parameters["minipipe.schema_id"] = strconv.Itoa(ch.SchemaID)
	}
	if !changed {
		return nil
	}
	if err := c.alter(ctx, cl, t); err != nil {
		return err
	}
	c.cfg.Log.Info("altered the metastore table", "table", t.TableName, "added_columns", added, "schema_id", ch.SchemaID)
	return nil
}

// widens reports whether a column of type from can be read as type to (the promotions Avro allows).
func widens(from, to string) bool {
	switch strings.ToLower(from) + ">" + strings.ToLower(to) {
	case "int>bigint", "int>float", "int>double", "bigint>float", "bigint>double", "float>double", "binary>string", "string>binary":
		return true
	}
	// Nested types: allow when the new type only adds struct fields (prefix extension).
	f, t := strings.ToLower(from), strings.ToLower(to)
	return strings.HasPrefix(f, "struct<") && strings.HasPrefix(t, strings.TrimSuffix(f, ">"))
}

// alter replaces the table with CASCADE, so every existing partition's columns change too.
func (c *Catalog) alter(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, t *hms.Table) error {
	env := &hms.EnvironmentContext{Properties: map[string]string{"CASCADE": "true"}}
	if !c.legacy {
		_, err := cl.AlterTableReq(ctx, &hms.AlterTableRequest{DbName: t.DbName, TableName: t.TableName, Table: t, EnvironmentContext: env, WriteId: -1})
		if err == nil {
			return nil
		}
		if !isUnknownMethod(err) {
			return fmt.Errorf("alter table: %w", err)
		}
		c.legacy = true
	}
	if err := cl.AlterTableWithCascade(ctx, t.DbName, t.TableName, t, true); err != nil {
		return fmt.Errorf("alter table: %w", err)
	}
	return nil
}

type partitionSpec struct {
	PartitionKeys []string `json:"partition_keys"`
	Location      string   `json:"location"`
	// From (relocate): the location the move starts from; a partition found elsewhere moved since.
	From string `json:"from,omitempty"`
}

func (c *Catalog) applyPartition(ctx context.Context, ch manifest.CatalogChange) error {
	var spec partitionSpec
	if err := json.Unmarshal(ch.Columns, &spec); err != nil {
		return fmt.Errorf("malformed change: %w", err)
	}
	name := Name(ch.Table)
	values := make([]string, len(spec.PartitionKeys))
	for i, k := range spec.PartitionKeys {
		values[i] = ch.Partition[k]
	}
	return c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		t, err := c.getTable(ctx, cl, name)
		if err != nil {
			return fmt.Errorf("get table: %w", err)
		}
		return c.addPartitions(ctx, cl, t, [][]string{values}, []string{spec.Location})
	})
}

// applyRelocate points a partition at the change's location: one alter_partition, which readers see at once
// (a query plans with the old location or the new one, never a mix).
func (c *Catalog) applyRelocate(ctx context.Context, ch manifest.CatalogChange) error {
	var spec partitionSpec
	if err := json.Unmarshal(ch.Columns, &spec); err != nil {
		return fmt.Errorf("malformed change: %w", err)
	}
	if spec.Location == "" || len(spec.PartitionKeys) == 0 {
		return fmt.Errorf("malformed change: no location or partition keys")
	}
	name := Name(ch.Table)
	values := make([]string, len(spec.PartitionKeys))
	for i, k := range spec.PartitionKeys {
		values[i] = ch.Partition[k]
	}
	return c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		part, err := cl.GetPartition(ctx, c.cfg.Database, name, values)
		if isNoSuchObject(err) {
			t, err := c.getTable(ctx, cl, name)
			if err != nil {
				return fmt.Errorf("get table: %w", err)
			}
			return c.addPartitions(ctx, cl, t, [][]string{values}, []string{spec.Location})
		}
		if err != nil {
			return fmt.Errorf("get partition %v: %w", values, err)
		}
		if part.Sd == nil {
			return fmt.Errorf("partition %v has no storage descriptor", values)
		}
		if SameLocation(part.Sd.Location, spec.Location) {
			return nil
		}
		if spec.From != "" && !SameLocation(part.Sd.Location, spec.From) {
			// Moved since (a replay swapped the generation in, a later compaction): a late move back would
			// point the partition at files about to go.
			c.cfg.Log.Warn("not moving a partition that moved since the compaction", "table", name, "partition", values,
				"at", part.Sd.Location, "compaction_from", spec.From, "compaction_to", spec.Location)
			return nil
		}
		part.Sd.Location = spec.Location
		if err := cl.AlterPartition(ctx, c.cfg.Database, name, part); err != nil {
			return fmt.Errorf("move partition %v to %s: %w", values, spec.Location, err)
		}
		return nil
	})
}

// SameLocation reports whether two locations name the same directory (a trailing slash, or escaping, aside).
func SameLocation(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(s, "/")
		if u, err := url.PathUnescape(s); err == nil {
			return u
		}
		return s
	}
	return norm(a) == norm(b)
}

// addPartitions registers partitions (if not there yet) with the table's columns.
func (c *Catalog) addPartitions(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, t *hms.Table, values [][]string, locations []string) error {
	parts := make([]*hms.Partition, len(values))
	cols := make([]Column, len(t.Sd.Cols))
	for i, f := range t.Sd.Cols {
		cols[i] = Column{Name: f.Name, Type: f.Type}
	}
	now := int32(time.Now().Unix())
	for i := range values {
		parts[i] = &hms.Partition{Values: values[i], DbName: t.DbName, TableName: t.TableName, CreateTime: now,
			Sd: storage(locations[i], cols), Parameters: map[string]string{}, WriteId: -1}
	}
	if !c.legacy {
		_, err := cl.AddPartitionsReq(ctx, &hms.AddPartitionsRequest{DbName: t.DbName, TblName: t.TableName, Parts: parts, IfNotExists: true, NeedResult_: false})
		if err == nil {
			return nil
		}
		if !isUnknownMethod(err) {
			return fmt.Errorf("add partitions: %w", err)
		}
		c.legacy = true
	}
	for _, p := range parts {
		if _, err := cl.AddPartition(ctx, p); err != nil && !isAlreadyExists(err) {
			return fmt.Errorf("add partition %v: %w", p.Values, err)
		}
	}
	return nil
}

// CompleteParameter is the partition parameter set on a partition minipipe has marked complete.
const CompleteParameter = "minipipe.complete"

// MarkComplete sets minipipe.complete=true on a partition (values in the table's partition key order).
func (c *Catalog) MarkComplete(ctx context.Context, table string, values []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		part, err := cl.GetPartition(ctx, c.cfg.Database, Name(table), values)
		if err != nil {
			return fmt.Errorf("get partition %v of %s: %w", values, table, err)
		}
		if part.Parameters[CompleteParameter] == "true" {
			return nil
		}
		if part.Parameters == nil {
			part.Parameters = map[string]string{}
		}
		part.Parameters[CompleteParameter] = "true"
		if err := cl.AlterPartition(ctx, c.cfg.Database, Name(table), part); err != nil {
			return fmt.Errorf("alter partition %v of %s: %w", values, table, err)
		}
		return nil
	})
}

// --- reconciling --------------------------------------------------------------------------------------

// TablePartitions is what the warehouse holds of one table's current generation, for Reconcile.
type TablePartitions struct {
	Table         string
	Generation    int
	Location      string
	Columns       []Column   // the newest schema's
	SchemaID      int        // of Columns
	PartitionKeys []string   // in order
	Partitions    [][]string // values, in PartitionKeys' order
	Locations     []string   // of Partitions
	// Complete says Partitions are all the table has: the metastore's others are dropped (a replay's
	// swap). Otherwise they are someone else's and stay.
	Complete bool
	// Canonical, where set (a compacted partition: its Location is its compaction's directory), is the
	// partition's own path under the table: a partition the metastore shows there, or in another compaction
	// directory under it, is moved to Location (a late, stale move put it back).
	Canonical []string
}

// Reconcile makes the metastore show what the warehouse holds: the table with its columns (nil Columns:
// keep the table's) and location, every partition registered. When the table's location changed (a
// replay swapped a new generation in), partitions pointing elsewhere are moved to the new location; with
// Complete, partitions the list lacks are dropped. Without a move its cost is a few calls per table plus
// one per missing partition batch, whatever the number of partitions.
func (c *Catalog) Reconcile(ctx context.Context, tp TablePartitions) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := Name(tp.Table)
	if err := ValidName(name); err != nil {
		return err
	}
	spec := tableSpec{Columns: tp.Columns, PartitionKeys: tp.PartitionKeys}
	b, _ := json.Marshal(spec)
	ch := manifest.CatalogChange{Op: OpTable, Table: tp.Table, Generation: tp.Generation, Location: tp.Location, Columns: b, SchemaID: tp.SchemaID}
	return c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		t, err := c.getTable(ctx, cl, name)
		if err != nil && !isNoSuchObject(err) {
			return fmt.Errorf("get table: %w", err)
		}
		moved := false
		if t == nil || err != nil {
			if tp.Columns == nil {
				return fmt.Errorf("table %s.%s is not in the metastore and its columns are unknown here; the pipeline registers it", c.cfg.Database, name)
			}
			if err := c.createTable(ctx, cl, name, ch, spec); err != nil {
				return err
			}
		} else {
			if t.Sd != nil && strings.TrimSuffix(t.Sd.Location, "/") != strings.TrimSuffix(tp.Location, "/") {
				c.cfg.Log.Info("moving the metastore table to its current generation", "table", name, "from", t.Sd.Location, "to", tp.Location)
				t.Sd.Location = tp.Location
				if t.Parameters == nil {
					t.Parameters = map[string]string{}
				}
				t.Parameters["minipipe.generation"] = strconv.Itoa(tp.Generation)
				if err := c.alter(ctx, cl, t); err != nil {
					return err
				}
				moved = true
			}
			if tp.Columns != nil {
				if err := c.alterTable(ctx, cl, t, ch, spec); err != nil {
					return err
				}
			}
		}
		if t, err = c.getTable(ctx, cl, name); err != nil {
			return fmt.Errorf("get table: %w", err)
		}
		keys := tp.PartitionKeys
		if len(keys) == 0 {
			for _, k := range t.PartitionKeys {
				keys = append(keys, k.Name)
			}
		}
		if len(keys) == 0 {
			return nil
		}
		names, err := cl.GetPartitionNames(ctx, t.DbName, t.TableName, -1)
		if err != nil {
			return fmt.Errorf("list partitions: %w", err)
		}
		want := map[string]int{}
		for i, vals := range tp.Partitions {
			want[partName(keys, vals)] = i
		}
		have := map[string]bool{}
		var stale []string
		for _, n := range names {
			have[n] = true
			if _, ok := want[n]; !ok {
				stale = append(stale, n)
			}
		}
		if (moved || tp.Complete) && len(names) > 0 {
			prefix := strings.TrimSuffix(tp.Location, "/") + "/"
			var relocate []*hms.Partition
			for start := 0; start < len(names); start += 500 {
				ps, err := cl.GetPartitionsByNames(ctx, t.DbName, t.TableName, names[start:min(start+500, len(names))])
				if err != nil {
					return fmt.Errorf("get partitions: %w", err)
				}
				for _, p := range ps {
					if p.Sd == nil || strings.HasPrefix(p.Sd.Location, prefix) {
						continue
					}
					if i, ok := want[partName(keys, p.Values)]; ok {
						p.Sd.Location = tp.Locations[i]
						relocate = append(relocate, p)
					}
				}
			}
			if len(relocate) > 0 {
				if err := cl.AlterPartitions(ctx, t.DbName, t.TableName, relocate); err != nil {
					return fmt.Errorf("move partitions: %w", err)
				}
			}
		}
		if err := c.repairCompacted(ctx, cl, t, keys, tp); err != nil {
			return err
		}
		if tp.Complete {
			for _, n := range stale {
				if _, err := cl.DropPartition(ctx, t.DbName, t.TableName, partValues(n), false); err != nil && !isNoSuchObject(err) {
					return fmt.Errorf("drop partition %s: %w", n, err)
				}
			}
		} else {
			stale = nil
		}
		var addVals [][]string
		var addLocs []string
		for i, vals := range tp.Partitions {
			if !have[partName(keys, vals)] {
				addVals = append(addVals, vals)
				addLocs = append(addLocs, tp.Locations[i])
			}
		}
		for start := 0; start < len(addVals); start += 500 {
			end := min(start+500, len(addVals))
			if err := c.addPartitions(ctx, cl, t, addVals[start:end], addLocs[start:end]); err != nil {
				return err
			}
		}
		if len(addVals) > 0 || len(stale) > 0 {
			c.cfg.Log.Info("reconciled the metastore table", "table", name, "partitions_added", len(addVals), "partitions_dropped", len(stale))
		}
		return nil
	})
}

// repairCompacted moves the compacted partitions the metastore shows at their own path, or at another of
// their compaction directories, to their current compaction directory.
func (c *Catalog) repairCompacted(ctx context.Context, cl *hms.ThriftHiveMetastoreClient, t *hms.Table, keys []string, tp TablePartitions) error {
	want := map[string]int{}
	var names []string
	for i, canon := range tp.Canonical {
		if canon == "" || i >= len(tp.Partitions) {
			continue
		}
		n := partName(keys, tp.Partitions[i])
		want[n] = i
		names = append(names, n)
	}
	var fix []*hms.Partition
	for start := 0; start < len(names); start += 500 {
		ps, err := cl.GetPartitionsByNames(ctx, t.DbName, t.TableName, names[start:min(start+500, len(names))])
		if err != nil {
			return fmt.Errorf("get partitions: %w", err)
		}
		for _, p := range ps {
			i, ok := want[partName(keys, p.Values)]
			if !ok || p.Sd == nil || SameLocation(p.Sd.Location, tp.Locations[i]) {
				continue
			}
			canon := strings.TrimSuffix(tp.Canonical[i], "/")
			if cur := strings.TrimSuffix(p.Sd.Location, "/"); SameLocation(cur, canon) || strings.HasPrefix(cur, canon+"/_c") {
				c.cfg.Log.Warn("moving a compacted partition back to its directory", "table", t.TableName, "partition", p.Values, "from", p.Sd.Location, "to", tp.Locations[i])
				p.Sd.Location = tp.Locations[i]
				fix = append(fix, p)
			}
		}
	}
	if len(fix) > 0 {
		if err := cl.AlterPartitions(ctx, t.DbName, t.TableName, fix); err != nil {
			return fmt.Errorf("move compacted partitions: %w", err)
		}
	}
	return nil
}

// partName is the metastore's partition name, k1=v1/k2=v2, values escaped as Hive escapes them.
func partName(keys, values []string) string {
	parts := make([]string, len(keys))
	for i := range keys {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		parts[i] = layout.Escape(keys[i]) + "=" + layout.Escape(v)
	}
	return strings.Join(parts, "/")
}

func partValues(name string) []string {
	var out []string
	for _, kv := range strings.Split(name, "/") {
		_, v, _ := strings.Cut(kv, "=")
		out = append(out, layout.Unescape(v))
	}
	return out
}

// Tables lists the database's tables.
func (c *Catalog) Tables(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	err := c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		var err error
		out, err = cl.GetAllTables(ctx, c.cfg.Database)
		return err
	})
	return out, err
}

// Call runs fn on the catalog's metastore connection, one call at a time, reconnecting after a transport
// error (returned as *Unavailable) and bounded by the catalog's timeout: for clients of the metastore's
// other APIs (sinks/iceberg's Hive catalog). The database is created first if missing.
func (c *Catalog) Call(ctx context.Context, fn func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.do(ctx, fn)
}

// Close closes the connection.
func (c *Catalog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
	return nil
}

// TableDescription is what the metastore holds of a table.
type TableDescription struct {
	Name          string
	Type          string
	Location      string
	Columns       []Column
	PartitionKeys []string
	Parameters    map[string]string
	// Partitions by name, each with its location and columns.
	Partitions map[string]PartitionDescription
}

// PartitionDescription is one partition of a TableDescription.
type PartitionDescription struct {
	Location   string
	Columns    []Column
	Parameters map[string]string
}

// Describe reads a table and its partitions from the metastore.
func (c *Catalog) Describe(ctx context.Context, table string) (*TableDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d *TableDescription
	err := c.do(ctx, func(ctx context.Context, cl *hms.ThriftHiveMetastoreClient) error {
		t, err := c.getTable(ctx, cl, Name(table))
		if err != nil {
			return err
		}
		d = &TableDescription{Name: t.TableName, Type: t.TableType, Parameters: t.Parameters, Partitions: map[string]PartitionDescription{}}
		if t.Sd != nil {
			d.Location = t.Sd.Location
			for _, f := range t.Sd.Cols {
				d.Columns = append(d.Columns, Column{Name: f.Name, Type: f.Type})
			}
		}
		for _, k := range t.PartitionKeys {
			d.PartitionKeys = append(d.PartitionKeys, k.Name)
		}
		if len(d.PartitionKeys) == 0 {
			return nil
		}
		names, err := cl.GetPartitionNames(ctx, t.DbName, t.TableName, -1)
		if err != nil || len(names) == 0 {
			return err
		}
		ps, err := cl.GetPartitionsByNames(ctx, t.DbName, t.TableName, names)
		if err != nil {
			return err
		}
		for _, p := range ps {
			pd := PartitionDescription{Parameters: p.Parameters}
			if p.Sd != nil {
				pd.Location = p.Sd.Location
				for _, f := range p.Sd.Cols {
					pd.Columns = append(pd.Columns, Column{Name: f.Name, Type: f.Type})
				}
			}
			d.Partitions[partName(d.PartitionKeys, p.Values)] = pd
		}
		return nil
	})
	return d, err
}
