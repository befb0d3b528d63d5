package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/sinks/fs"
)

// Version is set at build time (-ldflags "-X github.com/minipipe/minipipe/topology.Version=…").
var Version = "dev"

// Main runs the minipipe command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "minipipe",
		Short:         "Kafka REST Proxy, Schema Registry and exactly-once Parquet sink in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(stderr), topologyCommand(stdout, stderr), tablesCommand(stdout, stderr), topicsCommand(stdout, stderr), queryCommand(stdout, stderr), replayCommand(stdout, stderr), versionCommand(stdout))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "minipipe:", err)
		return 1
	}
	return 0
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", cfg.LogFormat)
}

func runCommand(stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve the REST Proxy and Schema Registry APIs and run the pipeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := load(cmd.Flags(), &cfg); err != nil {
				return err
			}
			log, err := newLogger(cfg, stderr)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			app, err := NewApp(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return app.Run(ctx)
		},
	}
	cfg.runFlags(cmd.Flags())
	return cmd
}

func versionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, "minipipe", Version) },
	}
}

// setup loads a subcommand's configuration and logger.
func setup(cmd *cobra.Command, cfg *Config, stderr io.Writer) (*slog.Logger, error) {
	if err := load(cmd.Flags(), cfg); err != nil {
		return nil, err
	}
	log, err := newLogger(*cfg, stderr)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(log)
	return log, nil
}

func topologyCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	var format string
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Print the topology: processors, topics and state stores (with the source topics Kafka has now, when reachable)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := setup(cmd, &cfg, stderr); err != nil {
				return err
			}
			if format != "text" && format != "json" && format != "mermaid" {
				return fmt.Errorf("--format %q: use text, json or mermaid", format)
			}
			catalog, err := NewCatalog(cfg)
			if err != nil {
				return err
			}
			var sources []Table
			kcfg := kafka.Config{Brokers: cfg.Brokers, ClientID: "minipipe-topology"}
			sc := kcfg.Sarama()
			sc.Net.DialTimeout = 2 * time.Second
			sc.Metadata.Retry.Max = 0
			if client, err := sarama.NewClient(cfg.Brokers, sc); err == nil {
				topics, _ := client.Topics()
				client.Close()
				for _, topic := range topics {
					if t, ok, err := catalog.ForTopic(topic); err == nil && ok {
						sources = append(sources, t)
					}
				}
			} else {
				fmt.Fprintf(stderr, "minipipe: Kafka at %v is not reachable; showing the topology without its source topics\n", cfg.Brokers)
			}
			top := Declare(cfg, sources)
			switch format {
			case "json":
				return top.WriteJSON(stdout)
			case "mermaid":
				top.WriteMermaid(stdout)
			default:
				top.Write(stdout)
			}
			return nil
		},
	}
	cfg.runFlags(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "text", "text, json or mermaid (a flowchart for Markdown)")
	return cmd
}

func topicsCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "List source topics with what validation saw: schema ids, records accepted, rejected by reason, Idempotency-Key repeats dropped, watermarks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := setup(cmd, &cfg, stderr); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			stats, err := ReadSourceStats(ctx, kafka.Config{Brokers: cfg.Brokers, ClientID: "minipipe-topics"}, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(stats)
			}
			WriteSourceStats(stdout, stats)
			return nil
		},
	}
	cfg.runFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func openWarehouse(cfg Config) (fs.FS, error) { return fs.Open(cfg.WarehouseURL()) }

func tablesCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "tables",
		Short: "List tables with their partitions, files, rows and schema versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := setup(cmd, &cfg, stderr); err != nil {
				return err
			}
			wh, err := openWarehouse(cfg)
			if err != nil {
				return err
			}
			defer wh.Close()
			tables, err := ListTables(wh)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLE\tPARTITION\tFILES\tROWS\tBYTES\tSCHEMA IDS\tLOCATION")
			for _, t := range tables {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", t.Name, "(all)", t.Files, t.Rows, t.Bytes, ints(t.SchemaIDs), wh.URI(t.Location))
				for _, p := range t.Partitions {
					path := p.Path
					if path == "" {
						path = "(unpartitioned)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t\n", "", path, p.Files, p.Rows, p.Bytes, ints(p.SchemaIDs))
				}
			}
			return tw.Flush()
		},
	}
	cfg.runFlags(cmd.Flags())
	return cmd
}

func ints(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

// QueryTables makes the DuckDB views of a warehouse's tables: each reads its current generation's
// committed files, by column name, with the partition columns as strings.
func QueryTables(wh fs.FS) ([]query.Table, error) {
	local, ok := wh.(interface{ LocalPath(string) (string, error) })
	if !ok {
		return nil, fmt.Errorf("minipipe query reads local warehouses (file://); query tables on HDFS through the Hive Metastore with Trino or Spark")
	}
	tables, err := ListTables(wh)
	if err != nil {
		return nil, err
	}
	var out []query.Table
	for _, t := range tables {
		qt := query.Table{Name: t.Name, PartitionFields: t.PartitionColumns}
		if t.Files > 0 {
			dir, err := local.LocalPath(t.Location)
			if err != nil {
				return nil, err
			}
			qt.Files = []string{filepath.Join(dir, "**", "*.parquet")}
		}
		out = append(out, qt)
	}
	return out, nil
}

func queryCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	var format string
	cmd := &cobra.Command{
		Use:   "query [--format table|csv|json] \"SQL\"",
		Short: "Run SQL over the warehouse with DuckDB: every table is a view over its committed Parquet files",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := setup(cmd, &cfg, stderr); err != nil {
				return err
			}
			wh, err := openWarehouse(cfg)
			if err != nil {
				return err
			}
			defer wh.Close()
			tables, err := QueryTables(wh)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			db, err := query.Open(ctx, tables)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := db.Query(ctx, args[0])
			if err != nil {
				return err
			}
			return res.Write(stdout, format)
		},
	}
	cfg.runFlags(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}

func replayCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	var table string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "replay --table T",
		Short: "Rebuild a table from its topic (earliest retained offset on) into a new generation, and swap it in atomically",
		Long: "The running pipeline does the work: it reads the table's topic again from its earliest retained offset into a new\n" +
			"generation while queries keep reading the current one; once the new generation has everything the current one has,\n" +
			"it is swapped in with one atomic write. Needs `minipipe run` running on the same brokers and warehouse.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := setup(cmd, &cfg, stderr); err != nil {
				return err
			}
			if table == "" {
				return fmt.Errorf("--table is required")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return RunReplay(ctx, cfg, table, stdout, grace)
		},
	}
	cfg.runFlags(cmd.Flags())
	cmd.Flags().StringVar(&table, "table", "", "the table to rebuild")
	cmd.Flags().DurationVar(&grace, "grace", 30*time.Second, "how long the old generation's files stay for queries that started before the swap")
	return cmd
}
