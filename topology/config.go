package topology

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/sinks/hive"
	"github.com/minipipe/minipipe/sinks/iceberg"
	"github.com/minipipe/minipipe/sinks/parquet"
	"github.com/minipipe/minipipe/sinks/s3"
)

// Config is everything minipipe's commands are configured with. Every field is a flag; each flag can also
// be given in the YAML file named by --config (same name as key) and as a MINIPIPE_* environment variable
// (upper case, dashes as underscores). A flag on the command line beats the environment, which beats the
// file, which beats the default.
type Config struct {
	ConfigFile string

	Brokers           []string
	EmbeddedKafka     bool
	DataDir           string
	RestAddr          string
	RegistryAddr      string
	HTTPAddr          string
	AutoCreateTopics  bool
	TopicPartitions   int
	ReplicationFactor int
	Compression       string
	MaxRequestBytes   int64
	ProduceTimeout    time.Duration
	MaxInflightBytes  int64
	MaxRecordItems    int64
	HTTPReadTimeout   time.Duration
	HTTPWriteTimeout  time.Duration
	HTTPIdleTimeout   time.Duration
	HTTPMaxConns      int
	RegistryTimeout   time.Duration
	ShutdownDelay     time.Duration
	RegistryTopic     string
	ConsoleTopic      string
	Trino             string
	TrinoCatalog      string
	ConsoleTimeout    time.Duration
	ConsoleMaxRows    int
	LogLevel          string
	LogFormat         string
	Pprof             bool
	AuthFile          string
	InsecureNoAuth    bool
	TLSCert           string
	TLSKey            string

	// Kafka's TLS and SASL.
	KafkaTLS              bool
	KafkaTLSCA            string
	KafkaTLSCert          string
	KafkaTLSKey           string
	KafkaTLSServerName    string
	KafkaSASLMechanism    string
	KafkaSASLUsername     string
	KafkaSASLPasswordFile string
	S3Endpoint            string
	S3Region              string

	// The pipeline.
	PipelineName      string
	Warehouse         string
	Topics            string
	PartitionBy       string
	Timezone          string
	TimestampField    string
	FlushSize         int64
	MaxFileBytes      int64
	RotateInterval    time.Duration
	IdempotencyWindow time.Duration
	AllowedLateness   time.Duration
	// CompactComplete compacts each partition of an Iceberg table once it is marked complete.
	CompactComplete    bool
	RowsPartitions     int
	RowsRetention      time.Duration
	CheckpointEvery    int
	DeliveryTimeout    time.Duration
	ParquetCompression string
	ParquetLevel       int
	MemoryLimit        ByteSize
	TopicRefresh       time.Duration
	Tables             []TableConfig

	// The metastore.
	Catalog       string
	HiveMetastore string
	HiveDatabase  string
	// TableFormat is hive (Parquet directories registered as Hive tables) or iceberg.
	TableFormat    string
	IcebergCatalog string
	// IcebergHiveLocks takes the metastore's table lock for each Iceberg commit (see sinks/iceberg).
	IcebergHiveLocks bool
	// IcebergRESTURI is the REST catalog of --iceberg-catalog rest; IcebergRESTWarehouse the warehouse name
	// it expects, if any; IcebergRESTCredentialFile holds OAuth2 client credentials (id:secret) or, with
	// the prefix "token:", a bearer token (or the environment variable MINIPIPE_ICEBERG_REST_CREDENTIAL).
	IcebergRESTURI            string
	IcebergRESTWarehouse      string
	IcebergRESTCredentialFile string
}

// DefaultConfig returns the defaults of design §2.
func DefaultConfig() Config {
	return Config{
		Brokers:          []string{"127.0.0.1:9092"},
		DataDir:          "./data",
		RestAddr:         "127.0.0.1:8082",
		RegistryAddr:     "127.0.0.1:8081",
		HTTPAddr:         "127.0.0.1:8080",
		AutoCreateTopics: true,
		TopicPartitions:  4,
		Compression:      "none",
		MaxRequestBytes:  8 << 20,
		ProduceTimeout:   30 * time.Second,
		MaxInflightBytes: 64 << 20,
		MaxRecordItems:   2_000_000,
		HTTPReadTimeout:  30 * time.Second,
		HTTPWriteTimeout: 2 * time.Minute,
		HTTPIdleTimeout:  2 * time.Minute,
		HTTPMaxConns:     1024,
		RegistryTimeout:  15 * time.Second,
		RegistryTopic:    "_minipipe_schemas",
		ConsoleTopic:     "_minipipe_console",
		TrinoCatalog:     "hive",
		ConsoleTimeout:   30 * time.Second,
		ConsoleMaxRows:   10000,
		LogLevel:         "info",
		LogFormat:        "text",

		PipelineName:       "minipipe",
		Topics:             ".*",
		PartitionBy:        "daily",
		Timezone:           "UTC",
		FlushSize:          1_000_000,
		MaxFileBytes:       128 << 20,
		RotateInterval:     10 * time.Second,
		IdempotencyWindow:  24 * time.Hour,
		RowsPartitions:     4,
		RowsRetention:      7 * 24 * time.Hour,
		CheckpointEvery:    64,
		DeliveryTimeout:    time.Minute,
		ParquetCompression: "snappy",
		MemoryLimit:        ByteSize{N: 1 << 30},
		TopicRefresh:       2 * time.Second,
		Catalog:            "none",
		TableFormat:        "hive",
		IcebergCatalog:     "hive",
		HiveDatabase:       "default",
	}
}

// connectionFlags registers the flags every subcommand shares.
func (c *Config) connectionFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML file with any of these flags as keys")
	fs.StringSliceVar(&c.Brokers, "brokers", c.Brokers, "Kafka bootstrap brokers (host:port, comma-separated)")
	fs.BoolVar(&c.EmbeddedKafka, "embedded-kafka", c.EmbeddedKafka, "run an in-process, in-memory Kafka broker on the --brokers address instead of using a real one: for trying minipipe out; nothing survives a restart")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for local state (rebuilt from Kafka when lost)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.Warehouse, "warehouse", c.Warehouse, "where tables live: file://PATH, hdfs://NAMENODE:PORT/PATH or s3://BUCKET/PREFIX (default file://<data-dir>/warehouse)")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", c.S3Endpoint, "URL of an S3-compatible server for an s3:// warehouse, addressed path-style (default: AWS, or AWS_ENDPOINT_URL_S3); credentials come from the AWS chain (AWS_ACCESS_KEY_ID…, ~/.aws, web identity, instance roles)")
	fs.StringVar(&c.S3Region, "s3-region", c.S3Region, "region of an s3:// warehouse's bucket (default: AWS_REGION, else us-east-1)")
	fs.StringVar(&c.Catalog, "catalog", c.Catalog, "metastore the tables are registered in: none or hive")
	fs.StringVar(&c.HiveMetastore, "hive-metastore", c.HiveMetastore, "Hive Metastore Thrift address, thrift://HOST:PORT (with --catalog hive)")
	fs.StringVar(&c.HiveDatabase, "hive-database", c.HiveDatabase, "Hive database holding the tables (created if missing)")
	fs.StringVar(&c.TableFormat, "table-format", c.TableFormat, "hive (Parquet partition directories registered as Hive tables) or iceberg (Iceberg v2 tables: a snapshot per commit batch; needs --catalog hive)")
	fs.StringVar(&c.IcebergCatalog, "iceberg-catalog", c.IcebergCatalog, "catalog of the Iceberg tables: hive (the --hive-metastore) or rest (--iceberg-rest-uri)")
	fs.StringVar(&c.IcebergRESTURI, "iceberg-rest-uri", c.IcebergRESTURI, "the Iceberg REST catalog of --iceberg-catalog rest, http(s)://HOST:PORT[/PATH]; the namespace is --hive-database")
	fs.StringVar(&c.IcebergRESTWarehouse, "iceberg-rest-warehouse", c.IcebergRESTWarehouse, "the warehouse name the REST catalog expects (catalogs serving several: Polaris, Gravitino, Lakekeeper)")
	fs.StringVar(&c.IcebergRESTCredentialFile, "iceberg-rest-credential-file", c.IcebergRESTCredentialFile, "file whose first line is the REST catalog's OAuth2 client credentials (CLIENT_ID:SECRET) or token:BEARER_TOKEN; or the environment variable "+IcebergRESTCredentialEnv)
	fs.BoolVar(&c.IcebergHiveLocks, "iceberg-hive-locks", c.IcebergHiveLocks, "take the metastore's table lock for each Iceberg commit, for tables that other lock-taking writers (Spark, Trino) also commit to; without it commits rely on Hive 4's atomic metadata-location check")
	fs.BoolVar(&c.KafkaTLS, "kafka-tls", c.KafkaTLS, "connect to Kafka over TLS (implied by the other --kafka-tls-* flags; the system's CAs unless --kafka-tls-ca)")
	fs.StringVar(&c.KafkaTLSCA, "kafka-tls-ca", c.KafkaTLSCA, "PEM bundle of the CAs Kafka's certificates must chain to")
	fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", c.KafkaTLSCert, "PEM client certificate for Kafka (mutual TLS), with --kafka-tls-key")
	fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", c.KafkaTLSKey, "PEM private key of --kafka-tls-cert")
	fs.StringVar(&c.KafkaTLSServerName, "kafka-tls-server-name", c.KafkaTLSServerName, "name to check Kafka's certificates against (default: the host of each broker's address)")
	fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", c.KafkaSASLMechanism, "SASL mechanism for Kafka: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (none when empty)")
	fs.StringVar(&c.KafkaSASLUsername, "kafka-sasl-username", c.KafkaSASLUsername, "SASL user name for Kafka")
	fs.StringVar(&c.KafkaSASLPasswordFile, "kafka-sasl-password-file", c.KafkaSASLPasswordFile, "file holding the SASL password for Kafka (its first line); or the environment variable MINIPIPE_KAFKA_SASL_PASSWORD")
	fs.StringVar(&c.PipelineName, "pipeline-name", c.PipelineName, "names the pipeline's own topics and consumer groups; instances with the same name share the work")
}

// runFlags registers the flags of minipipe run.
func (c *Config) runFlags(fs *pflag.FlagSet) {
	c.connectionFlags(fs)
	fs.StringVar(&c.RestAddr, "rest-addr", c.RestAddr, "address of the REST Proxy API")
	fs.StringVar(&c.RegistryAddr, "registry-addr", c.RegistryAddr, "address of the Schema Registry API")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address of /healthz, /readyz and /metrics")
	fs.BoolVar(&c.AutoCreateTopics, "auto-create-topics", c.AutoCreateTopics, "create a missing topic on its first produce through the REST API (false: 404/40401)")
	fs.IntVar(&c.TopicPartitions, "topic-partitions", c.TopicPartitions, "partitions of topics the REST API creates")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", c.ReplicationFactor, "replication factor of topics minipipe creates (0: min(3, brokers))")
	fs.StringVar(&c.Compression, "compression", c.Compression, "compression of produced batches: none, gzip, snappy, lz4 or zstd")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "largest REST request body accepted (larger: 413)")
	fs.DurationVar(&c.ProduceTimeout, "produce-timeout", c.ProduceTimeout, "longest a REST produce request takes: with Kafka slow or down it is answered by then with the retriable error 50003")
	fs.Int64Var(&c.MaxInflightBytes, "max-inflight-bytes", c.MaxInflightBytes, "REST request bytes worked on at once; past it requests are shed with 429 and Retry-After")
	fs.Int64Var(&c.MaxRecordItems, "max-record-items", c.MaxRecordItems, "most array and map items one Avro record may hold (more: a dead letter, or 422 over REST)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", c.HTTPReadTimeout, "longest a client may take to send a request, headers and body (every listener)")
	fs.DurationVar(&c.HTTPWriteTimeout, "http-write-timeout", c.HTTPWriteTimeout, "longest from a request's headers to the end of its response (more than --produce-timeout and --registry-timeout)")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", c.HTTPIdleTimeout, "how long a keep-alive connection may wait for its next request")
	fs.IntVar(&c.HTTPMaxConns, "http-max-connections", c.HTTPMaxConns, "open connections per listener; more wait to be accepted")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "on SIGTERM, how long /readyz answers 503 while every API keeps serving, before the listeners close (time for load balancers and Kubernetes to stop sending requests)")
	fs.DurationVar(&c.RegistryTimeout, "registry-timeout", c.RegistryTimeout, "how long a schema registry write may take")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go's profiler under /debug/pprof/ on the --http-addr address")
	fs.StringVar(&c.AuthFile, "auth-file", c.AuthFile, "users file (NAME:HASH:ROLES a line; `minipipe user add` writes it): every API then needs HTTP Basic credentials of a user with the role a request needs; re-read when it changes")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", c.InsecureNoAuth, "serve listeners reachable from other machines without authentication (refused otherwise)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) to serve every listener over HTTPS, with --tls-key; read again on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.RegistryTopic, "registry-topic", c.RegistryTopic, "compacted topic holding the schema registry's state; instances sharing it share one registry")
	fs.StringVar(&c.ConsoleTopic, "console-topic", c.ConsoleTopic, "compacted topic holding the console's saved queries, dashboards and re-drives; instances sharing it show the same")
	fs.StringVar(&c.Trino, "trino", c.Trino, "Trino coordinator (http://[user@]host:port) the console's SQL page can run on, over the Hive catalog of --hive-database")
	fs.StringVar(&c.TrinoCatalog, "trino-catalog", c.TrinoCatalog, "Trino catalog of minipipe's tables")
	fs.DurationVar(&c.ConsoleTimeout, "console-statement-timeout", c.ConsoleTimeout, "how long one statement of the console's SQL page may run")
	fs.IntVar(&c.ConsoleMaxRows, "console-max-rows", c.ConsoleMaxRows, "rows one statement of the console's SQL page returns at most")
	fs.StringVar(&c.Topics, "topics", c.Topics, "regular expression of the source topics that become tables (internal topics — names starting with '_', dead-letter topics — never do)")
	fs.StringVar(&c.PartitionBy, "partition-by", c.PartitionBy, "table partitions: daily (dt), hourly (dt, hr), day(FIELD) or hour(FIELD) (daily or hourly on a timestamp field, in UTC; Iceberg tables partition by the transform of the field itself), none or field:NAME")
	fs.StringVar(&c.Timezone, "timezone", c.Timezone, "time zone of daily and hourly partitions")
	fs.StringVar(&c.TimestampField, "timestamp-field", c.TimestampField, "record field giving the row's time for partitioning (default: the Kafka record timestamp)")
	fs.Int64Var(&c.FlushSize, "flush-size", c.FlushSize, "records per Parquet file")
	fs.Int64Var(&c.MaxFileBytes, "max-file-bytes", c.MaxFileBytes, "Avro bytes of the rows per file (Parquet compresses them)")
	fs.DurationVar(&c.RotateInterval, "rotate-interval", c.RotateInterval, "a file is committed at most this long after its first record, with or without new traffic")
	fs.IntVar(&c.RowsPartitions, "rows-partitions", c.RowsPartitions, "partitions of the repartition topic (the commit stage's parallelism) when minipipe creates it")
	fs.DurationVar(&c.IdempotencyWindow, "idempotency-window", c.IdempotencyWindow, "how long the retries of a REST produce request with an Idempotency-Key header are recognised and dropped")
	fs.DurationVar(&c.AllowedLateness, "allowed-lateness", c.AllowedLateness, "how far behind its source partition's event-time watermark a row may arrive before it counts as late (minipipe_late_rows_total); 0: not tracked")
	fs.BoolVar(&c.CompactComplete, "compact-complete", c.CompactComplete, "compact each daily or hourly partition of an Iceberg table into files of about 128 MiB once it is marked complete (needs --allowed-lateness and --table-format iceberg)")
	fs.IntVar(&c.CheckpointEvery, "manifest-checkpoint-every", c.CheckpointEvery, "commits of a commit partition between two manifest checkpoints (older records are then removed)")
	fs.DurationVar(&c.DeliveryTimeout, "kafka-delivery-timeout", c.DeliveryTimeout, "how long a record minipipe produces waits for the broker before that attempt fails (the pipeline's own records are then sent again)")
	fs.DurationVar(&c.RowsRetention, "rows-retention", c.RowsRetention, "the least retention of the repartition topic: how long the commit stage may be down before rows acknowledged upstream are lost (minipipe refuses to start when it cannot set it)")
	fs.StringVar(&c.ParquetCompression, "parquet-compression", c.ParquetCompression, "snappy, zstd, gzip or none")
	fs.IntVar(&c.ParquetLevel, "parquet-compression-level", c.ParquetLevel, "zstd 1–22 or gzip 1–9; 0 is the codec's default (zstd 1, gzip 6)")
	fs.Var(&c.MemoryLimit, "memory-limit", "soft limit of the process's memory (Go's GOMEMLIMIT; 1GiB, 512MiB, …; 0: none); a quarter of it is what the open Parquet files may buffer before the largest are committed early. GOMEMLIMIT in the environment counts when this is not given")
	fs.DurationVar(&c.TopicRefresh, "topic-refresh", c.TopicRefresh, "how often new topics are looked for")
}

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return "MINIPIPE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// load applies the config file and the environment to every flag not set on the command line, and reads
// the file's `tables:` list into cfg.
func load(fs *pflag.FlagSet, cfg *Config) error {
	onCLI := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { onCLI[f.Name] = true })

	file := ""
	if f := fs.Lookup("config"); f != nil {
		file = f.Value.String()
	}
	if file == "" {
		file = os.Getenv(EnvName("config"))
	}
	if file != "" {
		values, err := readConfigFile(file)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if raw, ok := values["tables"]; ok {
			b, err := yaml.Marshal(raw)
			if err == nil {
				err = yaml.Unmarshal(b, &cfg.Tables)
			}
			if err != nil {
				return fmt.Errorf("config file %s: tables: %w", file, err)
			}
		}
		for _, k := range keys {
			if k == "tables" {
				continue
			}
			f := fs.Lookup(k)
			if f == nil {
				if allKeys()[k] {
					continue // a key for another subcommand: one file serves them all
				}
				return fmt.Errorf("config file %s: unknown key %q", file, k)
			}
			if onCLI[k] || k == "config" {
				continue
			}
			if err := setFlag(f, values[k]); err != nil {
				return fmt.Errorf("config file %s: %s: %w", file, k, err)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || onCLI[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := resetAndSet(f, v); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(f.Name), e)
			}
		}
	})
	return err
}

// allKeys is every key a config file may hold: the flags of every subcommand.
func allKeys() map[string]bool {
	fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
	c := DefaultConfig()
	c.runFlags(fs)
	keys := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { keys[f.Name] = true })
	return keys
}

func readConfigFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return values, nil
}

// setFlag sets a flag from a YAML value: a list sets a slice flag element by element.
func setFlag(f *pflag.Flag, v any) error {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return resetAndSet(f, strings.Join(parts, ","))
	case nil:
		return nil
	default:
		return resetAndSet(f, fmt.Sprint(x))
	}
}

// resetAndSet replaces a flag's value (slice flags append on Set, so they are replaced instead).
func resetAndSet(f *pflag.Flag, s string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		return sv.Replace(parts)
	}
	return f.Value.Set(s)
}

// applyS3 gives --s3-endpoint and --s3-region to the s3:// warehouses this process opens.
func (c *Config) applyS3() {
	if c.S3Endpoint == "" && c.S3Region == "" {
		return
	}
	d := s3.Defaults()
	if c.S3Endpoint != "" {
		d.Endpoint = c.S3Endpoint
	}
	if c.S3Region != "" {
		d.Region = c.S3Region
	}
	s3.SetDefaults(d)
}

// validate checks values that flags cannot (and hands the S3 flags to s3:// warehouses).
func (c *Config) validate() error {
	c.applyS3()
	if len(c.Brokers) == 0 {
		return fmt.Errorf("--brokers: at least one broker is needed")
	}
	if !kafka.ValidCompression(c.Compression) {
		return fmt.Errorf("--compression %q: use none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if _, err := parquet.Codec(c.ParquetCompression); err != nil {
		return fmt.Errorf("--parquet-compression: %w", err)
	}
	if err := parquet.CheckLevel(c.ParquetCompression, c.ParquetLevel); err != nil {
		return fmt.Errorf("--parquet-compression-level: %w", err)
	}
	if c.MemoryLimit.N > 0 && c.MemoryLimit.N < minMemoryLimit {
		return fmt.Errorf("--memory-limit %s: at least 128MiB (or 0 for none)", c.MemoryLimit.String())
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if err := c.checkExposure(); err != nil {
		return err
	}
	if _, err := c.KafkaSecurity(); err != nil {
		return err
	}
	if c.TopicPartitions < 1 {
		return fmt.Errorf("--topic-partitions must be at least 1")
	}
	if !strings.HasPrefix(c.ConsoleTopic, "_") || len(c.ConsoleTopic) < 2 || c.ConsoleTopic == c.RegistryTopic {
		return fmt.Errorf("--console-topic %q: internal topics start with '_', and it is not the registry's", c.ConsoleTopic)
	}
	if c.Trino != "" {
		if u, err := url.Parse(c.Trino); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--trino: give the coordinator as http://[user@]host:port")
		}
	}
	if c.ConsoleTimeout <= 0 || c.ConsoleMaxRows <= 0 {
		return fmt.Errorf("--console-statement-timeout and --console-max-rows are positive")
	}
	if !strings.HasPrefix(c.RegistryTopic, "_") || len(c.RegistryTopic) < 2 {
		return fmt.Errorf("--registry-topic %q: internal topics start with '_'", c.RegistryTopic)
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if !validName(c.PipelineName) {
		return fmt.Errorf("--pipeline-name %q: use [a-zA-Z0-9_-]", c.PipelineName)
	}
	if c.RowsPartitions < 1 {
		return fmt.Errorf("--rows-partitions must be at least 1")
	}
	if c.ProduceTimeout <= 0 || c.RegistryTimeout <= 0 {
		return fmt.Errorf("--produce-timeout and --registry-timeout must be positive")
	}
	if c.HTTPWriteTimeout <= max(c.ProduceTimeout, c.RegistryTimeout) {
		return fmt.Errorf("--http-write-timeout %s must be longer than --produce-timeout %s and --registry-timeout %s, or answers are cut off", c.HTTPWriteTimeout, c.ProduceTimeout, c.RegistryTimeout)
	}
	if c.HTTPReadTimeout <= 0 || c.HTTPIdleTimeout <= 0 || c.HTTPMaxConns < 1 {
		return fmt.Errorf("--http-read-timeout and --http-idle-timeout must be positive, --http-max-connections at least 1")
	}
	if c.MaxInflightBytes < c.MaxRequestBytes {
		return fmt.Errorf("--max-inflight-bytes %d is less than --max-request-bytes %d: the largest request could never be taken", c.MaxInflightBytes, c.MaxRequestBytes)
	}
	if c.CheckpointEvery < 1 || c.DeliveryTimeout < time.Second {
		return fmt.Errorf("--manifest-checkpoint-every must be at least 1 and --kafka-delivery-timeout at least 1s")
	}
	if c.IdempotencyWindow < time.Second || c.AllowedLateness < 0 {
		return fmt.Errorf("--idempotency-window must be at least 1s and --allowed-lateness not negative")
	}
	if c.MaxRecordItems < 1 {
		return fmt.Errorf("--max-record-items must be at least 1")
	}
	if c.RowsRetention < time.Hour {
		return fmt.Errorf("--rows-retention %s: at least an hour (the commit stage may be down that long before rows are lost)", c.RowsRetention)
	}
	if _, err := NewTableRules(*c); err != nil {
		return err
	}
	switch c.Catalog {
	case "none", "":
	case "hive":
		if c.HiveMetastore == "" {
			return fmt.Errorf("--catalog hive needs --hive-metastore thrift://HOST:PORT")
		}
		if _, err := hive.New(hive.Config{URI: c.HiveMetastore, Database: c.HiveDatabase}); err != nil {
			return fmt.Errorf("--hive-metastore/--hive-database: %w", err)
		}
	default:
		return fmt.Errorf("--catalog %q: use none or hive", c.Catalog)
	}
	switch c.TableFormat {
	case "hive", "":
	case "iceberg":
		switch c.IcebergCatalog {
		case "hive", "":
			if c.Catalog != "hive" {
				return fmt.Errorf("--table-format iceberg keeps its tables in the Hive Metastore: add --catalog hive --hive-metastore thrift://HOST:PORT (or use --iceberg-catalog rest --iceberg-rest-uri URI)")
			}
		case "rest":
			if c.IcebergRESTURI == "" {
				return fmt.Errorf("--iceberg-catalog rest needs --iceberg-rest-uri http(s)://HOST:PORT")
			}
			if err := iceberg.CheckRESTURI(c.IcebergRESTURI); err != nil {
				return fmt.Errorf("--iceberg-rest-uri: %w", err)
			}
			if c.Catalog == "hive" {
				return fmt.Errorf("--iceberg-catalog rest keeps the tables in the REST catalog: drop --catalog hive")
			}
			if err := hive.ValidName(c.HiveDatabase); err != nil {
				return fmt.Errorf("--hive-database (the REST catalog's namespace): %w", err)
			}
			if _, err := c.IcebergRESTCredential(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("--iceberg-catalog %q: use hive or rest", c.IcebergCatalog)
		}
	default:
		return fmt.Errorf("--table-format %q: use hive or iceberg", c.TableFormat)
	}
	if c.CompactComplete && (c.AllowedLateness <= 0 || c.TableFormat != "iceberg") {
		return fmt.Errorf("--compact-complete compacts the partitions of Iceberg tables marked complete: it needs --allowed-lateness (partitions are complete only then) and --table-format iceberg (compact Hive tables with minipipe compact)")
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// WarehouseURL is the warehouse location with the default filled in.
func (c *Config) WarehouseURL() string {
	if c.Warehouse != "" {
		return c.Warehouse
	}
	return "file://" + filepath.Join(c.DataDir, "warehouse")
}

// LoadConfigFile reads a config file the way `minipipe run --config path` does: the defaults, then every key of
// the file, then the MINIPIPE_* environment variables (which win over the file). An unknown key or a bad value is
// an error.
func LoadConfigFile(path string) (Config, error) {
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	cfg.runFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		return cfg, err
	}
	if err := load(fs, &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}
