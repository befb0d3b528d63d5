package topology

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/minipipe/minipipe/internal/layout"
)

// TableConfig declares a table in the config file's `tables:` list. Anything left out takes the value of
// the corresponding flag.
type TableConfig struct {
	Topic          string        `yaml:"topic"`           // the source topic (exact name)
	Name           string        `yaml:"name"`            // table name; default: the topic, lower-cased, [^a-z0-9_] → _
	PartitionBy    string        `yaml:"partition-by"`    // daily | hourly | none | field:NAME
	Timezone       string        `yaml:"timezone"`        // of daily and hourly partitions; default UTC
	TimestampField string        `yaml:"timestamp-field"` // default: the Kafka record timestamp
	FlushSize      int64         `yaml:"flush-size"`      // records per file
	MaxFileBytes   int64         `yaml:"max-file-bytes"`  // Avro bytes of the rows per file
	RotateInterval time.Duration `yaml:"rotate-interval"` // a file closes at most this long after its first record
}

// TableRules decide which topics are tables, with which name, partitioning and rotation (--topics, the
// defaults and the config file's tables). The metastore is the catalog (commit.Catalog, sinks/hive).
type TableRules struct {
	topics   *regexp.Regexp
	declared map[string]TableConfig // by topic
	defaults TableConfig
	internal func(string) bool
	mu       sync.RWMutex // byName is read by the commit stage while discovery adds to it
	byName   map[string]layout.Table
}

// NewTableRules builds the table rules from the configuration.
func NewTableRules(cfg Config) (*TableRules, error) {
	pattern := cfg.Topics
	if pattern == "" {
		pattern = ".*"
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("--topics %q: %w", cfg.Topics, err)
	}
	c := &TableRules{topics: re, declared: map[string]TableConfig{}, byName: map[string]layout.Table{},
		defaults: TableConfig{PartitionBy: cfg.PartitionBy, Timezone: cfg.Timezone, TimestampField: cfg.TimestampField,
			FlushSize: cfg.FlushSize, MaxFileBytes: cfg.MaxFileBytes, RotateInterval: cfg.RotateInterval},
		internal: func(t string) bool { return InternalTopic(t, cfg.RegistryTopic) },
	}
	if _, err := c.resolve(TableConfig{Topic: "x"}); err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, tc := range cfg.Tables {
		if tc.Topic == "" {
			return nil, fmt.Errorf("tables: every table needs a topic")
		}
		if _, dup := c.declared[tc.Topic]; dup {
			return nil, fmt.Errorf("tables: topic %s is declared twice", tc.Topic)
		}
		t, err := c.resolve(tc)
		if err != nil {
			return nil, err
		}
		if other, dup := names[t.Name]; dup {
			return nil, fmt.Errorf("tables: topics %s and %s both feed table %s", other, tc.Topic, t.Name)
		}
		names[t.Name] = tc.Topic
		c.declared[tc.Topic] = tc
		c.byName[t.Name] = t
	}
	return c, nil
}

// InternalTopic reports whether a topic is not a data source: names starting with '_' (Kafka's and
// minipipe's own topics) and dead-letter topics.
func InternalTopic(topic, registryTopic string) bool {
	return strings.HasPrefix(topic, "_") || strings.HasSuffix(topic, ".dlq") || topic == registryTopic
}

// ForTopic returns the table a topic feeds, or false when the topic is not a source.
func (c *TableRules) ForTopic(topic string) (layout.Table, bool, error) {
	tc, declared := c.declared[topic]
	if !declared {
		if c.internal(topic) || !c.topics.MatchString(topic) {
			return layout.Table{}, false, nil
		}
		tc = TableConfig{Topic: topic}
	}
	t, err := c.resolve(tc)
	if err != nil {
		return layout.Table{}, false, err
	}
	return t, true, nil
}

// ByName returns a declared or already seen table.
func (c *TableRules) ByName(name string) (layout.Table, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.byName[name]
	return t, ok
}

// Hidden is a table's hidden partitioning (--partition-by day(FIELD) or hour(FIELD)): Iceberg's transform and
// its source field, or "" (see sinks/iceberg's Config.Hidden). A table not seen yet has the defaults'.
func (c *TableRules) Hidden(name string) (transform, source string) {
	t, ok := c.ByName(name)
	if !ok {
		var err error
		if t, err = c.resolve(TableConfig{Name: name, Topic: name}); err != nil {
			return "", ""
		}
	}
	return t.Spec.Transform(), t.Spec.Source
}

// Remember records a table resolved from a topic, so that the commit stage finds its policy by name.
func (c *TableRules) Remember(t layout.Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byName[t.Name] = t
}

func (c *TableRules) resolve(tc TableConfig) (layout.Table, error) {
	d := c.defaults
	pick := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	name := pick(tc.Name, layout.TableName(tc.Topic))
	if !layout.ValidTable(name) {
		return layout.Table{}, fmt.Errorf("table name %q: use 1 to 128 characters from [a-z0-9_]", name)
	}
	spec, err := layout.ParseSpec(pick(tc.PartitionBy, d.PartitionBy), pick(tc.Timezone, d.Timezone))
	if err != nil {
		return layout.Table{}, fmt.Errorf("table %s: %w", name, err)
	}
	policy := layout.Rotation{MaxRecords: d.FlushSize, MaxBytes: d.MaxFileBytes, Interval: d.RotateInterval}
	if tc.FlushSize > 0 {
		policy.MaxRecords = tc.FlushSize
	}
	if tc.MaxFileBytes > 0 {
		policy.MaxBytes = tc.MaxFileBytes
	}
	if tc.RotateInterval > 0 {
		policy.Interval = tc.RotateInterval
	}
	if policy.MaxRecords <= 0 && policy.MaxBytes <= 0 && policy.Interval <= 0 {
		return layout.Table{}, fmt.Errorf("table %s: files would never close: set --flush-size, --max-file-bytes or --rotate-interval", name)
	}
	tsField := pick(tc.TimestampField, d.TimestampField)
	if spec.Source != "" {
		if tsField != "" && tsField != spec.Source {
			return layout.Table{}, fmt.Errorf("table %s: --partition-by %s partitions by the field %s, --timestamp-field says %s", name, spec, spec.Source, tsField)
		}
		tsField = spec.Source
	}
	return layout.Table{Name: name, Topic: tc.Topic, Spec: spec, TimestampField: tsField, Rotation: policy}, nil
}
