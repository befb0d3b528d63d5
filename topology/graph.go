package topology

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/processors/dlq"
)

// The topology, declared once. Declare returns it as a value: each goka processor with its input, its group
// table, its outputs and the steps fused in it. The pipeline builds every goka group graph it runs from
// this value (Processor.Graph), and `minipipe topology` prints the same value; the admin endpoint
// /topology reports the graphs actually running, so a test can hold the two side by side.

// Step is one step of a processor, with the package that implements it and the state it keeps.
type Step struct {
	Name    string `json:"name"`
	Package string `json:"package"`
	Does    string `json:"does"`
	State   string `json:"state,omitempty"`
}

// Output is a topic a processor writes besides its group table.
type Output struct {
	Topic string `json:"topic"`
	What  string `json:"what"`
}

// Processor is one goka processor (one consumer group) of the topology.
type Processor struct {
	Name     string   `json:"name"`
	Group    string   `json:"group"`
	Input    string   `json:"input"`
	Table    string   `json:"table,omitempty"` // the goka group table topic, persisted in Pebble under --data-dir
	Outputs  []Output `json:"outputs"`
	Steps    []Step   `json:"steps"`
	PerTopic bool     `json:"per_topic,omitempty"` // one per source topic (and table generation)
}

// Graph builds the processor's goka group graph with cb as the callback of its input: the one place the
// topology's goka graphs are defined.
func (p Processor) Graph(cb goka.ProcessCallback) *goka.GroupGraph {
	edges := []goka.Edge{goka.Input(goka.Stream(p.Input), new(codec.Bytes), cb)}
	if p.Table != "" {
		edges = append(edges, goka.Persist(new(codec.Bytes)))
	}
	return goka.DefineGroup(goka.Group(p.Group), edges...)
}

// Topology is the whole pipeline: sources, processors, sink.
type Topology struct {
	Pipeline   string      `json:"pipeline"`
	Sources    []Source    `json:"sources"`
	Processors []Processor `json:"processors"`
	Sink       string      `json:"sink"`
}

// Source is a source topic and the table it feeds.
type Source struct {
	Topic       string `json:"topic"`
	Table       string `json:"table"`
	PartitionBy string `json:"partition_by"`
}

// Declare is the topology of a configuration: the commit processor, and an ingest processor for each
// source topic given (for none, one for a placeholder topic).
func Declare(cfg Config, sources []layout.Table) Topology {
	top := Topology{Pipeline: cfg.PipelineName, Sink: cfg.WarehouseURL()}
	shown := append([]layout.Table(nil), sources...)
	sort.Slice(shown, func(i, j int) bool { return shown[i].Topic < shown[j].Topic })
	for _, t := range shown {
		top.Sources = append(top.Sources, Source{Topic: t.Topic, Table: t.Name, PartitionBy: t.Spec.String()})
	}
	if len(shown) == 0 {
		spec, _ := layout.ParseSpec(cfg.PartitionBy, cfg.Timezone)
		shown = []layout.Table{{Name: "<table>", Topic: "<topic>", Spec: spec, TimestampField: cfg.TimestampField}}
	}
	for _, t := range shown {
		top.Processors = append(top.Processors, IngestProcessor(cfg, t, 1))
	}
	top.Processors = append(top.Processors, CommitProcessor(cfg))
	return top
}

// IngestProcessor is the declaration of a source topic's processor for a table generation.
func IngestProcessor(cfg Config, t layout.Table, gen int) Processor {
	n := Names{cfg.PipelineName}
	group := n.IngestGroup(t.Topic, gen)
	table := string(goka.GroupTable(goka.Group(group)))
	ts := "the Kafka record timestamp"
	if t.TimestampField != "" {
		ts = "field " + t.TimestampField
	}
	lateness := "late rows are not tracked (--allowed-lateness 0)"
	if cfg.AllowedLateness > 0 {
		lateness = fmt.Sprintf("rows more than %s behind are counted late", cfg.AllowedLateness)
	}
	return Processor{
		Name:  "ingest",
		Group: group,
		Input: t.Topic,
		Table: table,
		Outputs: []Output{
			{Topic: n.RowsTopic(), What: "repartition: key = table@generation/partition, batches of rows and the seals that end files; with --allowed-lateness, watermark markers to every partition"},
			{Topic: dlq.Topic(t.Topic), What: "dead letters, reason in headers"},
		},
		Steps: []Step{
			{Name: "ingest", Package: "processors/ingest", Does: "keep each record's source identity (topic, topic id, partition, offset, timestamp); drop retries of an Idempotency-Key request",
				State: fmt.Sprintf("idempotency keys per source partition for %s (%s keys i/, t/)", cfg.IdempotencyWindow, table)},
			{Name: "validate", Package: "processors/validate", Does: "Confluent framing, schema id known, schema the table can take, datum decodes; else → " + dlq.Topic(t.Topic),
				State: fmt.Sprintf("schema ids seen, records accepted and rejected by reason, per source partition (%s key v/); schemas from the registry view %s", table, cfg.RegistryTopic)},
			{Name: "bucket", Package: "processors/bucket", Does: fmt.Sprintf("table %s, partition %s from %s; end a file (a seal on its last batch) after %d rows, %d Avro bytes, %s after its first row, or at a new schema",
				t.Name, t.Spec, ts, t.Rotation.MaxRecords, t.Rotation.MaxBytes, t.Rotation.Interval),
				State: fmt.Sprintf("event-time watermark per source partition (%s key w/); %s; file boundaries per table partition (key f/)", table, lateness)},
		},
		PerTopic: true,
	}
}

// CommitProcessor is the declaration of the commit processor.
func CommitProcessor(cfg Config) Processor {
	n := Names{cfg.PipelineName}
	complete := Step{Name: "complete", Package: "processors/commit", Does: "off (--allowed-lateness 0)"}
	if cfg.AllowedLateness > 0 {
		complete.Does = fmt.Sprintf("a daily or hourly partition every source partition's watermark has passed by %s: commit its file, write _SUCCESS, set minipipe.complete=true in the metastore", cfg.AllowedLateness)
		complete.State = "source partitions' watermarks, from the markers (in memory; every source partition resends its own each second)"
		if cfg.CompactComplete {
			complete.Does += "; then compact it (Iceberg replace snapshot, beside the commit stage)"
		}
	}
	return Processor{
		Name:  "commit",
		Group: n.CommitGroup(),
		Input: n.RowsTopic(),
		Steps: []Step{
			{Name: "commit", Package: "processors/commit", Does: "write each table partition's rows from each source partition into a Parquet file until its seal → staging → manifest intent → publish (rename) → committed → catalog → acknowledge input in offset order",
				State: "write-ahead manifest " + cfg.WarehouseURL() + "/_minipipe/manifests/" + n.RowsTopic() + "/<partition> (in the warehouse: it commits with the files)"},
			complete,
		},
	}
}

// Running is what a processor's goka group graph says it consumes and keeps: what /topology reports of the
// graphs that run, and what Processor.Graph gives for a declaration.
type Running struct {
	Group  string   `json:"group"`
	Inputs []string `json:"inputs"`
	Table  string   `json:"table,omitempty"`
}

// RunningOf reads a goka group graph.
func RunningOf(g *goka.GroupGraph) Running {
	r := Running{Group: string(g.Group())}
	for _, e := range g.InputStreams() {
		r.Inputs = append(r.Inputs, e.Topic())
	}
	sort.Strings(r.Inputs)
	if t := g.GroupTable(); t != nil {
		r.Table = t.Topic()
	}
	return r
}

// WriteJSON prints the topology as JSON.
func (t Topology) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// Write prints the topology as text.
func (t Topology) Write(w io.Writer) {
	fmt.Fprintf(w, "minipipe topology %q\n\n", t.Pipeline)
	fmt.Fprintln(w, "Sources")
	if len(t.Sources) == 0 {
		fmt.Fprintln(w, "  (no source topic known: each non-internal topic matching --topics becomes a table when it appears)")
	}
	for _, s := range t.Sources {
		fmt.Fprintf(w, "  %-30s → table %-24s partition-by %s\n", s.Topic, s.Table, s.PartitionBy)
	}
	for _, p := range t.Processors {
		fmt.Fprintf(w, "\nProcessor %s: group %s", p.Name, p.Group)
		if p.PerTopic {
			fmt.Fprint(w, "   (one per source topic)")
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  input   %s\n", p.Input)
		names := make([]string, len(p.Steps))
		for i, s := range p.Steps {
			names[i] = s.Name
		}
		fmt.Fprintf(w, "  steps   %s   (fused in one goka processor: no Kafka hop between them)\n", strings.Join(names, " → "))
		for _, s := range p.Steps {
			fmt.Fprintf(w, "    %-9s %-20s %s\n", s.Name, s.Package, s.Does)
			if s.State != "" {
				fmt.Fprintf(w, "    %-9s %-20s state: %s\n", "", "", s.State)
			}
		}
		if p.Table != "" {
			fmt.Fprintf(w, "  table   %s (goka group table: Pebble under --data-dir, rebuilt from this topic when lost)\n", p.Table)
		}
		for _, o := range p.Outputs {
			fmt.Fprintf(w, "  output  %s (%s)\n", o.Topic, o.What)
		}
	}
	fmt.Fprintf(w, "\nSink\n  %s/<table>/<partition>/<file>.parquet (staging under _minipipe/staging, which engines skip)\n", t.Sink)
}

// WriteMermaid prints the topology as a Mermaid flowchart (for the README).
func (t Topology) WriteMermaid(w io.Writer) {
	fmt.Fprintln(w, "flowchart LR")
	id := map[string]string{}
	node := func(name, shape string) string {
		if v, ok := id[name]; ok {
			return v
		}
		v := fmt.Sprintf("n%d", len(id))
		id[name] = v
		fmt.Fprintf(w, "  %s%s\n", v, fmt.Sprintf(shape, strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(name)))
		return v
	}
	for _, p := range t.Processors {
		proc := node(p.Group, `[["%s"]]`)
		in := node(p.Input, `[/"%s"/]`)
		fmt.Fprintf(w, "  %s --> %s\n", in, proc)
		if p.Table != "" {
			tbl := node(p.Table, `[("%s")]`)
			fmt.Fprintf(w, "  %s <-.-> %s\n", proc, tbl)
		}
		for _, o := range p.Outputs {
			if o.Topic == p.Input {
				continue
			}
			fmt.Fprintf(w, "  %s --> %s\n", proc, node(o.Topic, `[/"%s"/]`))
		}
		if p.Name == "commit" {
			fmt.Fprintf(w, "  %s --> %s\n", proc, node(t.Sink, `[("%s")]`))
		}
	}
}
