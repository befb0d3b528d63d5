// Package iceberg keeps minipipe's tables as Apache Iceberg v2 tables (--table-format iceberg) through
// github.com/apache/iceberg-go, on the stack's Hive Metastore: the commit stage publishes its Parquet files
// exactly as for Hive tables, then adds them to the table in a snapshot per batch of committed intents.
//
// Exactly once without a coordinator: each commit partition of the stage appends its files in manifest
// order and records, in the same atomic snapshot commit, the table property
// minipipe.applied.<rows topic>.<partition> = the highest intent sequence number it has added. Before
// adding files it reads that property and skips what is already in; a commit that races another (a zombie
// owner applying the same batch, another partition, a compaction) fails on Iceberg's optimistic check and
// is rebuilt from the table as it now is, never replayed blindly onto it. The snapshot summary carries the
// same sequence numbers and the source offsets for people and tools.
//
// Files are visible only once a snapshot lists them; a published file whose snapshot is not committed yet
// is invisible to Iceberg readers (the manifest keeps it queued until it is).
package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	icehive "github.com/apache/iceberg-go/catalog/hive"
	"github.com/apache/iceberg-go/catalog/rest"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/sinks/manifest"
)

// The change operations recorded in the manifest.
const (
	// OpTable makes sure the table exists, with at least the change's columns.
	OpTable = "iceberg_table"
	// OpFile adds a committed file to the table's next snapshot.
	OpFile = "iceberg_file"
)

// PropApplied prefixes the table property that holds, per commit partition, the highest intent sequence
// number whose files the table has.
const PropApplied = "minipipe.applied."

// hiveNull is the partition value of a null field (Hive's default partition name).
const hiveNull = "__HIVE_DEFAULT_PARTITION__"

// Config configures the catalog.
type Config struct {
	// Metastore is the Hive Metastore, thrift://host:port.
	Metastore string
	// Database holds the tables (created if missing).
	Database string
	// FS is the warehouse: every Iceberg metadata file goes through it.
	FS fs.FS
	// Generation returns a table's current generation; changes for others are skipped. Nil: all apply.
	Generation func(table string) (int, error)
	// Timeout bounds each metastore call (default 30s).
	Timeout time.Duration
	// HiveLocks takes the metastore's table lock for every commit, as Iceberg's Hive catalogs do by default:
	// needed when other writers that take it (and do not check the metadata location in alter_table) commit
	// to the same tables. Without it, commits rely on Hive 4's check alone (see hiveClient).
	HiveLocks bool
	// REST, when set, is the URI of an Iceberg REST catalog that keeps the tables instead of the metastore
	// (Metastore and HiveLocks are then unused): Database is the namespace. RESTCredential (OAuth2 client
	// credentials, id:secret) or RESTToken (a bearer token) authenticate; RESTWarehouse names the catalog's
	// warehouse where the server serves several. The server writes the metadata files into the tables'
	// locations: it must reach the warehouse too.
	REST           string
	RESTCredential string
	RESTToken      string
	RESTWarehouse  string
	// Hidden returns a table's hidden partitioning, Iceberg's transform ("day", "hour") of a timestamp
	// field (--partition-by day(ts)), or "" for identity partitions on minipipe's partition columns. It
	// decides the spec of the tables made; a table keeps the spec it was made with.
	Hidden func(table string) (transform, source string)
	Log    *slog.Logger
}

// Catalog is the commit stage's catalog for Iceberg tables.
type Catalog struct {
	cfg   Config
	hc    *hive.Catalog // nil with a REST catalog
	props iceberg.Properties
	root  string

	mu  sync.Mutex
	cat catalog.Catalog // the Hive catalog; a REST one once reached (see catalog)

	warnedIdentity atomic.Bool
}

// New prepares the catalog; it connects on first use.
func New(cfg Config) (*Catalog, error) {
	if cfg.FS == nil {
		return nil, errors.New("iceberg: no warehouse")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Database == "" {
		cfg.Database = "default"
	}
	root := strings.TrimSuffix(cfg.FS.URI("."), "/")
	if cfg.REST != "" {
		if err := CheckRESTURI(cfg.REST); err != nil {
			return nil, err
		}
		registerIO(root, cfg.FS)
		c := &Catalog{cfg: cfg, root: root, props: iceberg.Properties{"warehouse": root, propWarehouse: root}}
		cfg.Log.Info("iceberg tables in a REST catalog", "uri", redactURI(cfg.REST), "namespace", cfg.Database, "warehouse", root)
		return c, nil
	}
	hc, err := hive.New(hive.Config{URI: cfg.Metastore, Database: cfg.Database, DatabaseLocation: root, Timeout: cfg.Timeout, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	registerIO(root, cfg.FS)
	props := iceberg.Properties{"uri": cfg.Metastore, "warehouse": root, propWarehouse: root,
		// iceberg-go polls the table lock: not for minutes while the applier could retry itself.
		"lock-check-max-wait-ms": "2000", "lock-check-retries": "30"}
	c := &Catalog{cfg: cfg, hc: hc, props: props, root: root}
	c.cat = icehive.NewCatalogWithClient(hiveClient{c: hc, locks: cfg.HiveLocks}, props)
	cfg.Log.Info("iceberg tables on the hive metastore", "metastore", cfg.Metastore, "database", cfg.Database, "warehouse", root, "hive_locks", cfg.HiveLocks)
	return c, nil
}

// Close closes the metastore connection.
func (c *Catalog) Close() error {
	if c.hc == nil {
		return nil
	}
	return c.hc.Close()
}

// catalog is the Iceberg catalog: the metastore's, or the REST catalog, reached on first use (the
// server's configuration is read then) and its namespace made if missing.
func (c *Catalog) catalog(ctx context.Context) (catalog.Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cat != nil {
		return c.cat, nil
	}
	opts := []rest.Option{rest.WithAdditionalProps(c.props)}
	switch {
	case c.cfg.RESTCredential != "":
		opts = append(opts, rest.WithCredential(c.cfg.RESTCredential))
	case c.cfg.RESTToken != "":
		opts = append(opts, rest.WithOAuthToken(c.cfg.RESTToken))
	}
	if c.cfg.RESTWarehouse != "" {
		opts = append(opts, rest.WithWarehouseLocation(c.cfg.RESTWarehouse))
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	cat, err := rest.NewCatalog(tctx, "minipipe", c.cfg.REST, opts...)
	if err != nil {
		return nil, &hive.Unavailable{Err: fmt.Errorf("iceberg REST catalog %s: %w", redactURI(c.cfg.REST), err)}
	}
	ns := table.Identifier{c.cfg.Database}
	exists, err := cat.CheckNamespaceExists(tctx, ns)
	if err != nil {
		return nil, &hive.Unavailable{Err: fmt.Errorf("iceberg REST catalog %s: namespace %s: %w", redactURI(c.cfg.REST), c.cfg.Database, err)}
	}
	if !exists {
		if err := cat.CreateNamespace(tctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return nil, fmt.Errorf("iceberg REST catalog %s: namespace %s: %w", redactURI(c.cfg.REST), c.cfg.Database, err)
		}
	}
	c.cat = cat
	return cat, nil
}

// callContext bounds one call to a REST catalog (the metastore's calls have their own timeouts).
func (c *Catalog) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.hc != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout())
}

func (c *Catalog) timeout() time.Duration {
	if c.cfg.Timeout > 0 {
		return c.cfg.Timeout
	}
	return 30 * time.Second
}

// CheckRESTURI checks a REST catalog URI: http(s)://HOST[:PORT][/PATH], with no credentials, query or
// fragment in it (iceberg-go sends the query with every call and puts the whole URL in its errors).
func CheckRESTURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("iceberg REST catalog URI %q: want http(s)://HOST[:PORT][/PATH]; credentials go in --iceberg-rest-credential-file", redactURI(s))
	}
	return nil
}

// redactURI is a URI fit for logs and errors: without user information or query (where tokens hide).
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URI)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Database is the database of the tables.
func (c *Catalog) Database() string { return c.cfg.Database }

// Identifier is a table's Iceberg identifier.
func (c *Catalog) Identifier(name string) table.Identifier {
	return icehive.TableIdentifier(c.cfg.Database, name)
}

// tableSpec is an OpTable change's payload.
type tableSpec struct {
	Schema        json.RawMessage `json:"schema"` // Iceberg schema JSON of the file's columns
	PartitionKeys []string        `json:"partition_keys,omitempty"`
	// Transform and Source: a hidden partitioning (Config.Hidden) instead of identity on PartitionKeys.
	Transform string `json:"transform,omitempty"`
	Source    string `json:"source,omitempty"`
}

// Changes returns what committing file f needs: the table (with the file's columns) when its partition
// or its schema is new to this writer, and the file itself.
func (c *Catalog) Changes(f manifest.File, location string, cols *arrow.Schema, newPartition, newSchema bool) []manifest.CatalogChange {
	var out []manifest.CatalogChange
	if newPartition || newSchema {
		sch, err := icebergSchema(cols)
		if err == nil {
			spec, _ := json.Marshal(c.spec(f, sch))
			out = append(out, manifest.CatalogChange{Op: OpTable, Table: f.Table, Generation: f.Generation, Location: location, Columns: spec, SchemaID: f.SchemaID})
		} else {
			c.cfg.Log.Error("a schema Iceberg cannot hold; the table keeps its columns", "table", f.Table, "schema_id", f.SchemaID, "error", err)
		}
	}
	file := f
	file.Staging = ""
	fc := manifest.CatalogChange{Op: OpFile, Table: f.Table, Generation: f.Generation, Location: location, SchemaID: f.SchemaID, File: &file}
	var note fileNote
	if c.cfg.Hidden != nil {
		// The partitioning the file was cut under: its dt (hr) is the day (hour) of its rows' field only then.
		note.Transform, note.Source = c.cfg.Hidden(f.Table)
	}
	// The table whose field ids the file carries (FieldIDs): a table made again since numbers otherwise.
	note.TableUUID, _ = cols.Metadata().GetValue(metaTableUUID)
	if note != (fileNote{}) {
		fc.Columns, _ = json.Marshal(note)
	}
	return append(out, fc)
}

// spec is the table of file f, whose columns are sch.
func (c *Catalog) spec(f manifest.File, sch *iceberg.Schema) *tableSpec {
	b, _ := json.Marshal(sch)
	ts := &tableSpec{Schema: b, PartitionKeys: partitionKeys(f.Partitions)}
	if c.cfg.Hidden != nil {
		ts.Transform, ts.Source = c.cfg.Hidden(f.Table)
	}
	return ts
}

// fileNote is an OpFile change's payload: the hidden partitioning its file was cut under, and the table
// whose field ids the file carries.
type fileNote struct {
	Transform string `json:"transform,omitempty"`
	Source    string `json:"source,omitempty"`
	TableUUID string `json:"table_uuid,omitempty"`
}

func partitionKeys(parts [][2]string) []string {
	keys := make([]string, len(parts))
	for i, kv := range parts {
		keys[i] = kv[0]
	}
	return keys
}

// icebergSchema maps a file's Arrow columns to an Iceberg schema with every field optional (a later
// schema may drop a field, and Iceberg adds columns only as optional).
func icebergSchema(cols *arrow.Schema) (*iceberg.Schema, error) {
	fields := make([]arrow.Field, cols.NumFields())
	for i, f := range cols.Fields() {
		fields[i] = nullable(f)
	}
	return table.ArrowSchemaToIcebergWithFreshIDs(arrow.NewSchema(fields, nil), true)
}

func nullable(f arrow.Field) arrow.Field {
	f.Nullable = true
	switch t := f.Type.(type) {
	case *arrow.StructType:
		fs := make([]arrow.Field, t.NumFields())
		for i, sf := range t.Fields() {
			fs[i] = nullable(sf)
		}
		f.Type = arrow.StructOf(fs...)
	case *arrow.ListType:
		f.Type = arrow.ListOfField(nullable(t.ElemField()))
	case *arrow.MapType:
		f.Type = arrow.MapOf(t.KeyType(), nullable(t.ItemField()).Type)
	}
	return f
}

// work is what one Apply does to one table.
type work struct {
	table, location string
	gen             int
	spec            *tableSpec // the newest OpTable of the batch
	schemas         []*iceberg.Schema
	files           []manifest.CatalogChange
}

// Apply applies changes in order: per table, its schema first, then one snapshot with every file not
// already in (see the package doc).
func (c *Catalog) Apply(ctx context.Context, changes []manifest.CatalogChange) error {
	var order []string
	works := map[string]*work{}
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
		w := works[ch.Table]
		if w == nil {
			w = &work{table: ch.Table, location: ch.Location, gen: ch.Generation}
			works[ch.Table] = w
			order = append(order, ch.Table)
		}
		switch ch.Op {
		case OpTable:
			var spec tableSpec
			if err := json.Unmarshal(ch.Columns, &spec); err != nil {
				return fmt.Errorf("iceberg table %s: malformed change: %w", ch.Table, err)
			}
			var sch iceberg.Schema
			if err := json.Unmarshal(spec.Schema, &sch); err != nil {
				return fmt.Errorf("iceberg table %s: malformed schema: %w", ch.Table, err)
			}
			w.spec = &spec
			w.schemas = append(w.schemas, &sch)
		case OpFile:
			if ch.File == nil {
				return fmt.Errorf("iceberg table %s: a file change without its file", ch.Table)
			}
			w.files = append(w.files, ch)
		default:
			c.cfg.Log.Warn("skipping an unknown catalog change", "op", ch.Op, "table", ch.Table)
		}
	}
	for _, name := range order {
		if err := c.applyTable(ctx, works[name]); err != nil {
			return fmt.Errorf("iceberg table %s.%s: %w", c.cfg.Database, name, err)
		}
	}
	return nil
}

func (c *Catalog) applyTable(ctx context.Context, w *work) error {
	if err := hive.ValidName(w.table); err != nil {
		return err
	}
	tbl, err := c.ensure(ctx, w.table, w.location, w.spec, w.schemas)
	if err != nil {
		return err
	}
	if len(w.files) == 0 {
		return nil
	}
	return c.addFiles(ctx, tbl, w.files)
}

// ensure loads the table, creating it when missing (from spec) and adding the columns of schemas it lacks.
func (c *Catalog) ensure(ctx context.Context, name, location string, spec *tableSpec, schemas []*iceberg.Schema) (*table.Table, error) {
	id := c.Identifier(name)
	tbl, err := c.load(ctx, id)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		if spec == nil || len(schemas) == 0 {
			return nil, fmt.Errorf("the table is not in the metastore and this batch has no schema for it (it was dropped by hand; minipipe creates it again with its next schema): %w", err)
		}
		// Every schema is unioned in after, the first too: another writer may have created the table
		// first, with its own schema.
		tbl, err = c.create(ctx, id, location, schemas[0], spec)
	}
	if err != nil {
		return nil, err
	}
	if len(schemas) == 0 && tbl.NameMapping() == nil {
		schemas = []*iceberg.Schema{tbl.Schema()} // sets the mapping (see evolve)
	}
	for _, s := range schemas {
		if tbl, err = c.evolve(ctx, tbl, s); err != nil {
			return nil, err
		}
	}
	return tbl, nil
}

// load loads a table through the guarded catalog.
func (c *Catalog) load(ctx context.Context, id table.Identifier) (*table.Table, error) {
	return guarded{c}.LoadTable(ctx, id)
}

// create creates the table: the schema's columns then the partition keys (strings, as in the Hive
// tables), partitioned by identity on the keys, at location (the table generation's directory, which
// holds minipipe's Parquet files; Iceberg's metadata goes under its metadata/).
func (c *Catalog) create(ctx context.Context, id table.Identifier, location string, sch *iceberg.Schema, ts *tableSpec) (*table.Table, error) {
	keys := ts.PartitionKeys
	fields := slices.Clone(sch.Fields())
	if ts.Transform == "" {
		for _, k := range keys {
			if _, ok := sch.FindFieldByName(k); ok {
				continue
			}
			fields = append(fields, iceberg.NestedField{ID: -1, Name: k, Type: iceberg.PrimitiveTypes.String})
		}
	}
	// Ids as the table assigns them (the same fresh assignment), so that the name mapping set with the
	// table is the table's.
	full, err := iceberg.AssignFreshSchemaIDs(iceberg.NewSchema(0, fields...), nil)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var opts []iceberg.PartitionOption
	if ts.Transform != "" {
		tr, err := hiddenTransform(full, ts.Transform, ts.Source)
		if err != nil {
			return nil, err
		}
		opts = append(opts, iceberg.AddPartitionFieldByName(ts.Source, ts.Source+"_"+ts.Transform, tr, full, nil))
		keys = []string{ts.Transform + "(" + ts.Source + ")"}
	} else {
		for _, k := range keys {
			opts = append(opts, iceberg.AddPartitionFieldByName(k, k, iceberg.IdentityTransform{}, full, nil))
		}
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("partition spec %v: %w", keys, err)
	}
	// The name mapping (how readers find the columns of minipipe's files, which carry no field ids) is set
	// here and by schema updates only, never by an append: an append does not assert the schema, and would
	// put back the mapping of an older one.
	mapping, err := json.Marshal(full.NameMapping())
	if err != nil {
		return nil, err
	}
	props := iceberg.Properties{
		table.DefaultNameMappingKey: string(mapping),
		// Files Iceberg itself writes (compaction) go under _iceberg_data, which minipipe's own readers of
		// the committed files skip.
		table.WriteDataPathKey:                       strings.TrimSuffix(location, "/") + "/_iceberg_data",
		"format-version":                             "2",
		"created_by":                                 "minipipe",
		"write.parquet.compression-codec":            "zstd",
		"write.metadata.delete-after-commit.enabled": "true",
		"write.metadata.previous-versions-max":       "20",
		"commit.manifest-merge.enabled":              "true",
		// Commit partitions (and compactions) commit to one table at once: conflicts are the rule.
		"commit.retry.num-retries": "10",
	}
	cat, err := c.catalog(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.callContext(ctx)
	_, err = cat.CreateTable(cctx, id, full, catalog.WithLocation(location), catalog.WithPartitionSpec(&spec), catalog.WithProperties(props))
	cancel()
	if err != nil && !errors.Is(err, catalog.ErrTableAlreadyExists) {
		// Another commit partition created it meanwhile (a Derby-backed metastore says so with a
		// MetaException, not AlreadyExists).
		if tbl, lerr := c.load(ctx, id); lerr == nil {
			return tbl, nil
		}
		return nil, fmt.Errorf("create: %w", err)
	}
	if err == nil {
		c.cfg.Log.Info("created the iceberg table", "table", id, "location", location, "columns", len(fields), "partitioned_by", keys)
	}
	tbl, err := c.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if m, _ := json.Marshal(tbl.Schema().NameMapping()); tbl.Properties()[table.DefaultNameMappingKey] != string(m) {
		// The catalog assigned other ids than the mapping says (a REST catalog numbers nested fields in
		// another order), or another writer made the table: the mapping of the schema it has.
		return c.evolve(ctx, tbl, tbl.Schema())
	}
	return tbl, nil
}

// hiddenTransform is the transform of a hidden partitioning, checked against its source field's type: day of
// a timestamp or a date, hour of a timestamp.
func hiddenTransform(sch *iceberg.Schema, transform, source string) (iceberg.Transform, error) {
	f, ok := sch.FindFieldByName(source)
	if !ok {
		return nil, fmt.Errorf("--partition-by %s(%s): the schema has no field %s", transform, source, source)
	}
	switch f.Type.(type) {
	case iceberg.TimestampType, iceberg.TimestampTzType:
	case iceberg.DateType:
		if transform == "day" {
			return iceberg.DayTransform{}, nil
		}
		return nil, fmt.Errorf("--partition-by hour(%s): %s is a date", source, source)
	default:
		return nil, fmt.Errorf("--partition-by %s(%s): %s is %s, not an Avro timestamp-millis/-micros (or date)", transform, source, source, f.Type)
	}
	if transform == "hour" {
		return iceberg.HourTransform{}, nil
	}
	return iceberg.DayTransform{}, nil
}

// partitionValue is a data file's value of one partition field, from minipipe's partition of the file
// (values by column: dt, hr, or the field): the value itself for identity, the day or hour since the epoch of
// dt (and hr), in UTC, for a hidden partitioning by day or hour of the row's timestamp, which put the file in
// that dt.
func partitionValue(pf iceberg.PartitionField, col string, values map[string]string) (any, error) {
	switch pf.Transform.(type) {
	case iceberg.IdentityTransform:
		v, ok := values[col]
		if !ok || v == hiveNull {
			return nil, nil
		}
		return v, nil
	case iceberg.DayTransform, iceberg.HourTransform:
		dt, hr := values["dt"], values["hr"]
		_, hourly := pf.Transform.(iceberg.HourTransform)
		if hourly && hr == "" {
			return nil, fmt.Errorf("partition field %s: the file's partition has no hr (the table is partitioned by hour, the pipeline by day)", pf.Name)
		}
		if !hourly {
			hr = "00"
		}
		t, err := time.ParseInLocation("2006-01-02 15", dt+" "+hr, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("partition field %s: the file's partition dt=%s hr=%s: %w", pf.Name, dt, hr, err)
		}
		if hourly {
			return int32(t.Unix() / 3600), nil
		}
		return iceberg.Date(t.Unix() / 86400), nil
	}
	return nil, fmt.Errorf("partition field %s: transform %s is not one minipipe writes", pf.Name, pf.Transform)
}

// evolve adds the columns of s the table lacks and widens the types s widened (Iceberg's union by name,
// after renamed: a column another engine renamed is found by its old name); it never drops a column. The
// table's name mapping (how readers find the columns of files without field ids) gets the new columns in
// the same commit, and keeps the old names of renamed ones; a mapping that does not fit the schema is
// replaced by the schema's. Concurrent evolutions retry on the table as it now is.
func (c *Catalog) evolve(ctx context.Context, tbl *table.Table, s *iceberg.Schema) (*table.Table, error) {
	for attempt := 0; ; attempt++ {
		nm := tbl.NameMapping()
		fits := mappingFits(nm, tbl.Schema())
		var opts []table.UpdateSchemaOption
		if fits {
			opts = append(opts, table.WithNameMapping(nm)) // the update extends it
		}
		txn := tbl.NewTransaction()
		if err := txn.UpdateSchema(true, false, opts...).UnionByNameWith(renamed(s, tbl)).Commit(); err != nil {
			return nil, fmt.Errorf("schema update: %w", err)
		}
		staged, err := txn.StagedTable()
		if err != nil {
			return nil, fmt.Errorf("schema update: %w", err)
		}
		commitCtx := ctx
		if staged.Schema().ID == tbl.Schema().ID {
			if fits {
				return tbl, nil
			}
			// A table made by another writer without the mapping minipipe's files need, or with one that is not
			// its schema's (a REST catalog assigns a new table's ids itself, in another order than iceberg-go):
			// set it, on the condition that the schema is still the one it maps.
			commitCtx = withSchemaAssert(ctx, tbl.Schema().ID)
		}
		if !fits {
			mapping, err := json.Marshal(repairMapping(nm, staged.Schema()))
			if err != nil {
				return nil, err
			}
			if err := txn.SetProperties(iceberg.Properties{table.DefaultNameMappingKey: string(mapping)}); err != nil {
				return nil, err
			}
		}
		next, err := txn.Commit(context.WithValue(commitCtx, schemaUpdateKey{}, true))
		if err == nil {
			c.cfg.Log.Info("evolved the iceberg table's schema", "table", tbl.Identifier(), "schema_id", next.Schema().ID, "columns", len(next.Schema().Fields()))
			return next, nil
		}
		if !errors.Is(err, errSchemaConflict) && !errors.Is(err, table.ErrCommitFailed) || attempt == 10 {
			return nil, fmt.Errorf("schema update: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(10+rand.IntN(90)) * time.Millisecond):
		}
		if tbl, err = c.load(ctx, tbl.Identifier()); err != nil {
			return nil, err
		}
	}
}

// Applied is the highest intent sequence number of stream whose files the table has (0: none).
func Applied(tbl *table.Table, stream string) (uint64, error) {
	v, ok := tbl.Properties()[PropApplied+stream]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("table property %s%s is %q, not an intent number: minipipe owns it; restore it", PropApplied, stream, v)
	}
	return n, nil
}

// addFiles adds the files not in the table yet (by the stream's applied property) in one snapshot.
func (c *Catalog) addFiles(ctx context.Context, tbl *table.Table, files []manifest.CatalogChange) error {
	stream := files[0].Stream
	for i, f := range files {
		if f.Stream != stream || stream == "" || f.Seq == 0 || i > 0 && f.Seq < files[i-1].Seq {
			return fmt.Errorf("a batch of file changes without its manifest's order (stream %q, seq %d)", f.Stream, f.Seq)
		}
	}
	for attempt := 0; ; attempt++ {
		applied, err := Applied(tbl, stream)
		if err != nil {
			return err
		}
		var todo []manifest.CatalogChange
		for _, f := range files {
			if f.Seq > applied {
				todo = append(todo, f)
			}
		}
		if skipped := len(files) - len(todo); skipped > 0 && attempt == 0 {
			// A batch whose snapshot went in before the manifest recorded it (a crash, a zombie).
			c.cfg.Log.Info("files already in the iceberg table; not adding them again", "table", tbl.Identifier(), "stream", stream, "files", skipped, "applied_seq", applied)
		}
		if len(todo) == 0 {
			return nil
		}
		next, err := c.commitFiles(ctx, tbl, stream, todo)
		if err == nil {
			c.expire(ctx, next)
			return nil
		}
		// A conflict (another writer committed first) or our own files already in: rebuild from the table
		// as it is now. Anything else leaves the outcome unknown: the applier retries later, and the
		// property tells then whether the snapshot went in.
		if !errors.Is(err, table.ErrCommitFailed) && !errors.Is(err, errApplied) || attempt == 15 {
			return err
		}
		// Other commit partitions commit to the table too: step aside a moment, not in step with them.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(10+rand.IntN(90)) * time.Millisecond):
		}
		if tbl, err = c.load(ctx, tbl.Identifier()); err != nil {
			return err
		}
	}
}

func (c *Catalog) commitFiles(ctx context.Context, tbl *table.Table, stream string, todo []manifest.CatalogChange) (*table.Table, error) {
	spec := tbl.Spec()
	sch := tbl.Schema()
	dfs := make([]iceberg.DataFile, 0, len(todo))
	var rows, bytes int64
	sources := map[string][2]int64{}
	name := tbl.Identifier()[len(tbl.Identifier())-1]
	hidden, hiddenSource := "", 0
	top := level{fields: sch.Fields(), mapping: tbl.NameMapping()}
	for _, pf := range spec.Fields() {
		switch pf.Transform.(type) {
		case iceberg.DayTransform, iceberg.HourTransform:
			col, _ := sch.FindColumnName(pf.SourceID())
			hidden, hiddenSource = pf.Transform.String()+"("+col+")", pf.SourceID()
		}
	}
	if hidden == "" && c.cfg.Hidden != nil {
		if tr, src := c.cfg.Hidden(name); tr != "" && c.warnedIdentity.CompareAndSwap(false, true) {
			c.cfg.Log.Warn("the iceberg table was made with identity partitions before --partition-by said otherwise: it keeps them", "table", tbl.Identifier(), "partition_by", tr+"("+src+")")
		}
	}
	for _, ch := range todo {
		f := ch.File
		var hp fileNote
		if len(ch.Columns) > 0 {
			_ = json.Unmarshal(ch.Columns, &hp)
		}
		if hidden != "" {
			// The values come from the file's dt (and hr), which are the UTC day (and hour) of the field's
			// time only when the file was cut under that very partitioning.
			// By the source's id: another engine may have renamed it since (the mapping keeps the old name).
			src := top.find(hp.Source, nil)
			if got := hp.Transform + "(" + hp.Source + ")"; !src.ok || src.nf.ID != hiddenSource || hp.Transform+"("+src.nf.Name+")" != hidden {
				return nil, fmt.Errorf("the table is partitioned by %s; file %s was cut under --partition-by %s: give every instance --partition-by %s (files cut otherwise cannot go in)", hidden, f.Final, got, hidden)
			}
		}
		values := map[string]string{}
		for _, kv := range f.Partitions {
			values[kv[0]] = kv[1]
		}
		data := map[int]any{}
		for _, pf := range spec.Fields() {
			col, ok := sch.FindColumnName(pf.SourceID())
			if !ok {
				return nil, fmt.Errorf("partition field %s has no column", pf.Name)
			}
			if _, in := values[col]; !in {
				// A partition column another engine renamed: the file's partition names it as it was.
				for _, m := range top.mapping {
					if m.FieldID != nil && *m.FieldID == pf.SourceID() {
						for _, n := range m.Names {
							if _, in := values[n]; in {
								col = n
							}
						}
					}
				}
			}
			v, err := partitionValue(pf, col, values)
			if err != nil {
				return nil, err
			}
			data[pf.FieldID] = v
		}
		uri, size := c.root+"/"+f.Final, f.Bytes
		var err error
		if hp.TableUUID != "" && hp.TableUUID != tbl.Metadata().TableUUID().String() {
			// Numbered by a table made again since (dropped by hand): its ids may name other columns here.
			if uri, size, err = c.renumber(ctx, tbl, f.Final); err != nil {
				return nil, fmt.Errorf("file %s, numbered by another table %s: %w", f.Final, hp.TableUUID, err)
			}
		}
		b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, uri, iceberg.ParquetFile, data, nil, nil, f.Rows, size)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", uri, err)
		}
		dfs = append(dfs, b.Build())
		rows += f.Rows
		bytes += f.Bytes
		for _, s := range f.Sources {
			r, ok := sources[s.Source]
			if !ok {
				r = [2]int64{s.First, s.Last}
			}
			sources[s.Source] = [2]int64{min(r[0], s.First), max(r[1], s.Last)}
		}
	}
	first, last := todo[0].Seq, todo[len(todo)-1].Seq
	var offsets []string
	for _, src := range slices.Sorted(maps.Keys(sources)) {
		r := sources[src]
		offsets = append(offsets, fmt.Sprintf("%s@%d-%d", src, r[0], r[1]))
	}
	summary := iceberg.Properties{
		"minipipe.stream": stream, "minipipe.first-seq": strconv.FormatUint(first, 10), "minipipe.seq": strconv.FormatUint(last, 10),
		"minipipe.files": strconv.Itoa(len(dfs)), "minipipe.sources": strings.Join(offsets, ","),
	}
	txn := tbl.NewTransaction()
	if err := txn.SetProperties(iceberg.Properties{PropApplied + stream: strconv.FormatUint(last, 10)}); err != nil {
		return nil, err
	}
	if err := txn.AddDataFiles(ctx, dfs, summary, table.WithoutDuplicateCheck(), table.WithoutAutoNameMapping()); err != nil {
		return nil, fmt.Errorf("adding %d files: %w", len(dfs), err)
	}
	if beforeCommit != nil {
		beforeCommit()
	}
	next, err := txn.Commit(withGuard(ctx, stream, first))
	if err != nil {
		return nil, err
	}
	snap := next.CurrentSnapshot()
	var sid int64
	if snap != nil {
		sid = snap.SnapshotID
	}
	c.cfg.Log.Debug("iceberg snapshot", "table", tbl.Identifier(), "snapshot", sid, "files", len(dfs), "rows", rows, "bytes", bytes, "stream", stream, "seq", last)
	return next, nil
}

// Automatic snapshot expiry: a table with more than expireAbove snapshots drops those older than
// expireAge (a floor for time travel) from its metadata, keeping the last retainSnapshots (a snapshot per commit batch would otherwise
// grow the metadata file every commit rewrites without bound). Their files stay.
var (
	expireAbove     = 1000
	retainSnapshots = 500
	expireAge       = time.Minute
)

// expire drops old snapshots from a table with many; a failure is only logged (the next commit tries again).
func (c *Catalog) expire(ctx context.Context, tbl *table.Table) {
	if len(tbl.Metadata().Snapshots()) <= expireAbove {
		return
	}
	txn := tbl.NewTransaction()
	err := txn.ExpireSnapshots(table.WithOlderThan(expireAge), table.WithRetainLast(retainSnapshots), table.WithPostCommit(false))
	if err == nil {
		_, err = txn.Commit(ctx)
	}
	if err != nil {
		c.cfg.Log.Warn("expiring old snapshots failed; the next commit tries again", "table", tbl.Identifier(), "snapshots", len(tbl.Metadata().Snapshots()), "error", err)
	}
}

// Reconcile makes sure a table this commit partition has committed to exists with its columns (its files
// are in the manifest's queue of unapplied changes until a snapshot has them).
func (c *Catalog) Reconcile(ctx context.Context, name string, gen int, location string, cols *arrow.Schema, keys []string) error {
	if c.cfg.Generation != nil {
		cur, err := c.cfg.Generation(name)
		if err != nil {
			return err
		}
		if gen != cur {
			return nil
		}
	}
	if err := hive.ValidName(name); err != nil {
		return err
	}
	if cols == nil {
		return nil
	}
	sch, err := icebergSchema(cols)
	if err != nil {
		return err
	}
	ts := &tableSpec{PartitionKeys: keys}
	if c.cfg.Hidden != nil {
		ts.Transform, ts.Source = c.cfg.Hidden(name)
	}
	if _, err := c.ensure(ctx, name, location, ts, []*iceberg.Schema{sch}); err != nil {
		return fmt.Errorf("iceberg table %s.%s: %w", c.cfg.Database, name, err)
	}
	return nil
}

// Tables lists the database's Iceberg tables.
func (c *Catalog) Tables(ctx context.Context) ([]string, error) {
	var out []string
	cat, err := c.catalog(ctx)
	if err != nil {
		return nil, err
	}
	for id, err := range cat.ListTables(ctx, icehive.DatabaseIdentifier(c.cfg.Database)) {
		if err != nil {
			return nil, err
		}
		out = append(out, id[len(id)-1])
	}
	sort.Strings(out)
	return out, nil
}

// Load loads a table.
func (c *Catalog) Load(ctx context.Context, name string) (*table.Table, error) {
	return c.load(ctx, c.Identifier(name))
}

// --- the guard ----------------------------------------------------------------------------------------

// beforeCommit, when set (tests), runs between building a batch's snapshot and committing it.
var beforeCommit func()

// errApplied: a snapshot adding files of a stream met a table that already has some of them.
var errApplied = errors.New("the table already has files of this batch")

type guardKey struct{}

type guard struct {
	stream string
	first  uint64
}

func withGuard(ctx context.Context, stream string, first uint64) context.Context {
	return context.WithValue(ctx, guardKey{}, guard{stream, first})
}

// schemaUpdateKey marks the commits of a schema update: a conflict is answered by evolve, which reloads the
// table and unions again, not by iceberg-go, which would replay the same update (and its failing schema
// assertion) with a backoff, for minutes.
type schemaUpdateKey struct{}

// errSchemaConflict is a schema update's conflict: another writer changed the table first.
var errSchemaConflict = errors.New("the table changed meanwhile")

type schemaAssertKey struct{}

// withSchemaAssert makes the commits of ctx also require the table's current schema id to be id.
func withSchemaAssert(ctx context.Context, id int) context.Context {
	return context.WithValue(ctx, schemaAssertKey{}, id)
}

// guarded is the catalog iceberg-go commits through. iceberg-go answers a conflicting commit by reloading
// the table and replaying the same appends onto it; before every attempt, guarded reads the table and
// refuses (errApplied) when the stream's applied property has reached the batch, so a batch a zombie or an
// earlier attempt already committed is never added twice. The check is sound because the attempt asserts
// the branch head it was built on, which is no newer than the table read here.
type guarded struct{ c *Catalog }

func (g guarded) LoadTable(ctx context.Context, id table.Identifier) (*table.Table, error) {
	cat, err := g.c.catalog(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := g.c.callContext(ctx)
	defer cancel()
	t, err := cat.LoadTable(ctx, id)
	if err != nil {
		return nil, err
	}
	return table.New(t.Identifier(), t.Metadata(), t.MetadataLocation(), icebergio.LoadFSFunc(g.c.props, t.MetadataLocation()), g), nil
}

func (g guarded) CommitTable(ctx context.Context, id table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	cat, err := g.c.catalog(ctx)
	if err != nil {
		return nil, "", err
	}
	// A commit cut short is an unknown outcome: the next attempt's guard finds out.
	ctx, cancel := g.c.callContext(ctx)
	defer cancel()
	if gd, ok := ctx.Value(guardKey{}).(guard); ok {
		cur, err := cat.LoadTable(ctx, id)
		if err != nil {
			return nil, "", err
		}
		v, err := Applied(cur, gd.stream)
		if err != nil {
			return nil, "", err
		}
		if v >= gd.first {
			return nil, "", fmt.Errorf("%w (%s has %d, the batch starts at %d)", errApplied, gd.stream, v, gd.first)
		}
	}
	if sid, ok := ctx.Value(schemaAssertKey{}).(int); ok {
		reqs = append(slices.Clone(reqs), table.AssertCurrentSchemaID(sid))
	}
	md, loc, err := cat.CommitTable(ctx, id, reqs, updates)
	if err != nil && g.c.hc != nil && !errors.Is(err, table.ErrCommitFailed) && strings.Contains(strings.ToLower(err.Error()), "requirement failed") {
		// iceberg-go's Hive catalog checks the requirements under the table lock before it writes
		// anything, but returns a failed one unwrapped: it is a clean conflict (another writer committed
		// first), which iceberg-go retries only as ErrCommitFailed. Were it our own commit whose answer was
		// lost, the retry meets the guard above.
		err = fmt.Errorf("%w: %w", table.ErrCommitFailed, err)
	}
	if err != nil && ctx.Value(schemaUpdateKey{}) != nil && errors.Is(err, table.ErrCommitFailed) {
		err = fmt.Errorf("%w: %s", errSchemaConflict, err.Error()) // not an ErrCommitFailed: no replay
	}
	return md, loc, err
}
