package topology

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/lovoo/goka"

	"github.com/minipipe/minipipe/processors/bucket"
	"github.com/minipipe/minipipe/processors/commit"
	"github.com/minipipe/minipipe/processors/dlq"
	"github.com/minipipe/minipipe/processors/ingest"
)

// The topology, declared: sources feed a fused ingest → validate → bucket processor per source topic,
// which re-keys rows by table partition through the repartition topic to the commit processor, which
// writes the warehouse. The same declaration is compiled to the goka group graphs that run, and printed by
// `minipipe topology`.

// Step is one processing step of a processor.
type Step struct {
	Name  string
	What  string
	State string // where the step keeps its state, if anywhere
}

// Node is a goka processor of the topology.
type Node struct {
	Group   string
	Inputs  []string
	Outputs []string
	Steps   []Step
	Stores  []string
	Graph   *goka.GroupGraph
	Repeat  string // "one per source topic"
}

// Graph is the whole topology.
type Graph struct {
	Names   Names
	Sources []Table
	Nodes   []Node
	Sink    string
}

// BuildGraph declares the topology for the configuration and the source topics known (none is fine: the
// per-topic processor is shown once for a placeholder topic).
func BuildGraph(cfg Config, sources []Table) Graph {
	n := Names{cfg.PipelineName}
	g := Graph{Names: n, Sources: sources, Sink: cfg.WarehouseURL()}
	shown := sources
	if len(shown) == 0 {
		spec, _ := bucket.ParseSpec(cfg.PartitionBy, cfg.Timezone)
		shown = []Table{{Name: "<table>", Topic: "<topic>", Spec: spec, TimestampField: cfg.TimestampField}}
	}
	for _, t := range shown {
		in := ingest.New(ingest.Config{
			Table:     ingest.Table{Name: t.Name, Generation: 1, Topic: t.Topic, Spec: t.Spec, TimestampField: t.TimestampField},
			Group:     n.IngestGroup(t.Topic, 1),
			RowsTopic: n.RowsTopic(),
		})
		ts := "the Kafka record timestamp"
		if t.TimestampField != "" {
			ts = "field " + t.TimestampField
		}
		g.Nodes = append(g.Nodes, Node{
			Group:   n.IngestGroup(t.Topic, 1),
			Inputs:  []string{t.Topic + " (source)"},
			Outputs: []string{n.RowsTopic() + " (repartition: key = table@generation/partition, batches of rows)", dlq.Topic(t.Topic) + " (dead letters, reason in headers)"},
			Steps: []Step{
				{Name: "ingest", What: "keep each record's source identity: topic, topic id, partition, offset, timestamp"},
				{Name: "validate", What: "Confluent framing, schema id known, schema the table can take, datum decodes; else → " + dlq.Topic(t.Topic), State: "schema registry view " + cfg.RegistryTopic + " (Pebble)"},
				{Name: "bucket", What: fmt.Sprintf("table %s, partition %s from %s", t.Name, t.Spec, ts)},
			},
			Stores: []string{"registry view " + cfg.RegistryTopic + " in Pebble under " + cfg.DataDir + "/state"},
			Graph:  in.Graph(),
			Repeat: "one per source topic",
		})
	}
	com := commit.New(commit.Config{Group: n.CommitGroup(), RowsTopic: n.RowsTopic()})
	g.Nodes = append(g.Nodes, Node{
		Group:   n.CommitGroup(),
		Inputs:  []string{fmt.Sprintf("%s (%d partitions)", n.RowsTopic(), cfg.RowsPartitions)},
		Outputs: []string{n.RowsTopic() + " (seal markers that close idle files)"},
		Steps: []Step{
			{Name: "bucket (rotate)", What: fmt.Sprintf("close a file after %d rows, %d bytes or %s after its first row", cfg.FlushSize, cfg.MaxFileBytes, cfg.RotateInterval)},
			{Name: "commit", What: "write Parquet to staging → manifest intent → publish (rename) → committed → acknowledge input in offset order",
				State: "write-ahead manifest " + g.Sink + "/_minipipe/manifests/" + n.RowsTopic() + "/<partition>"},
		},
		Stores: []string{"manifest (framed, checksummed, create-exclusive records) in the warehouse"},
		Graph:  com.Graph(),
	})
	return g
}

// Write prints the topology.
func (g Graph) Write(w io.Writer) {
	fmt.Fprintf(w, "minipipe topology %q\n\n", g.Names.Pipeline)
	fmt.Fprintln(w, "Sources")
	if len(g.Sources) == 0 {
		fmt.Fprintln(w, "  (no source topic known: each non-internal topic matching --topics becomes a table when it appears)")
	}
	srcs := append([]Table(nil), g.Sources...)
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Topic < srcs[j].Topic })
	for _, t := range srcs {
		fmt.Fprintf(w, "  %-30s → table %-24s partition-by %s\n", t.Topic, t.Name, t.Spec)
	}
	for _, n := range g.Nodes {
		fmt.Fprintf(w, "\nProcessor %s", n.Group)
		if n.Repeat != "" {
			fmt.Fprintf(w, "   (%s)", n.Repeat)
		}
		fmt.Fprintln(w)
		for _, in := range n.Inputs {
			fmt.Fprintf(w, "  input   %s\n", in)
		}
		names := make([]string, len(n.Steps))
		for i, s := range n.Steps {
			names[i] = s.Name
		}
		fmt.Fprintf(w, "  steps   %s   (fused in one goka processor: no Kafka hop between them)\n", strings.Join(names, " → "))
		for _, s := range n.Steps {
			fmt.Fprintf(w, "    %-16s %s\n", s.Name, s.What)
			if s.State != "" {
				fmt.Fprintf(w, "    %-16s state: %s\n", "", s.State)
			}
		}
		for _, o := range n.Outputs {
			fmt.Fprintf(w, "  output  %s\n", o)
		}
		for _, s := range n.Stores {
			fmt.Fprintf(w, "  store   %s\n", s)
		}
		if n.Graph != nil {
			var edges []string
			for _, e := range n.Graph.InputStreams() {
				edges = append(edges, "input("+e.Topic()+")")
			}
			if t := n.Graph.GroupTable(); t != nil {
				edges = append(edges, "persist("+t.Topic()+")")
			}
			fmt.Fprintf(w, "  goka    group %s: %s\n", n.Graph.Group(), strings.Join(edges, ", "))
		}
	}
	fmt.Fprintf(w, "\nSink\n  %s/<table>/<partition>/<topic>+<partition>+<first offset>.parquet (staging under _minipipe/staging, which engines skip)\n", g.Sink)
}
