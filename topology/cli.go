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

	"github.com/minipipe/minipipe/internal/layout"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/sinks/iceberg"
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
		Version:       Version,
	}
	root.SetVersionTemplate("minipipe {{.Version}}\n")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(stderr), topologyCommand(stdout, stderr), tablesCommand(stdout, stderr), topicsCommand(stdout, stderr), queryCommand(stdout, stderr), replayCommand(stdout, stderr), compactCommand(stdout, stderr), userCommand(stdout, stderr), auditCommand(stdout, stderr), versionCommand(stdout))
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
			applyMemoryLimit(&cfg, log)
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
	cfg.applyS3()
	log, err := newLogger(*cfg, stderr)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(log)
	return log, nil
}

// command is a subcommand taking the run flags: its configuration is loaded (flags, environment, config
// file) and the logger set before run.
func command(use, short string, args cobra.PositionalArgs, stderr io.Writer, run func(cmd *cobra.Command, cfg Config, args []string) error) *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, a []string) error {
		if _, err := setup(cmd, &cfg, stderr); err != nil {
			return err
		}
		return run(cmd, cfg, a)
	}}
	cfg.runFlags(cmd.Flags())
	return cmd
}

// withWarehouse runs fn on the configured warehouse.
func withWarehouse(cfg Config, fn func(wh fs.FS) error) error {
	wh, err := fs.Open(cfg.WarehouseURL())
	if err != nil {
		return err
	}
	defer wh.Close()
	return fn(wh)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func topologyCommand(stdout, stderr io.Writer) *cobra.Command {
	var format string
	cmd := command("topology", "Print the topology: processors, topics and state stores (with the source topics Kafka has now, when reachable)",
		cobra.NoArgs, stderr, func(_ *cobra.Command, cfg Config, _ []string) error {
			if format != "text" && format != "json" && format != "mermaid" {
				return fmt.Errorf("--format %q: use text, json or mermaid", format)
			}
			catalog, err := NewTableRules(cfg)
			if err != nil {
				return err
			}
			var sources []layout.Table
			kcfg, err := cfg.KafkaConfig("minipipe-topology")
			if err != nil {
				return err
			}
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
				return writeJSON(stdout, top)
			case "mermaid":
				top.WriteMermaid(stdout)
			default:
				top.Write(stdout)
			}
			return nil
		})
	cmd.Flags().StringVar(&format, "format", "text", "text, json or mermaid (a flowchart for Markdown)")
	return cmd
}

func topicsCommand(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	cmd := command("topics", "List source topics with what validation saw: schema ids, records accepted, rejected by reason, Idempotency-Key repeats dropped, watermarks",
		cobra.NoArgs, stderr, func(cmd *cobra.Command, cfg Config, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			kcfg, err := cfg.KafkaConfig("minipipe-topics")
			if err != nil {
				return err
			}
			stats, err := ReadSourceStats(ctx, kcfg, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(stdout, stats)
			}
			WriteSourceStats(stdout, stats)
			return nil
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func tablesCommand(stdout, stderr io.Writer) *cobra.Command {
	return command("tables", "List tables with their partitions, files, rows and schema versions", cobra.NoArgs, stderr,
		func(_ *cobra.Command, cfg Config, _ []string) error {
			return withWarehouse(cfg, func(wh fs.FS) error {
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
			})
		})
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
func QueryTables(wh fs.FS) ([]query.View, error) {
	local, ok := wh.(interface{ LocalPath(string) (string, error) })
	if !ok {
		return nil, fmt.Errorf("minipipe query reads local warehouses (file://); query tables on HDFS through the Hive Metastore with Trino or Spark")
	}
	tables, err := ListTables(wh)
	if err != nil {
		return nil, err
	}
	var out []query.View
	for _, t := range tables {
		qt := query.View{Name: t.Name, PartitionFields: t.PartitionColumns}
		if t.Files > 0 {
			files, err := tableFiles(wh, t)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				path, err := local.LocalPath(f.Path)
				if err != nil {
					return nil, err
				}
				qt.Files = append(qt.Files, path)
			}
		}
		out = append(out, qt)
	}
	return out, nil
}

func queryCommand(stdout, stderr io.Writer) *cobra.Command {
	var format string
	cmd := command("query [--format table|csv|json] \"SQL\"", "Run SQL over the warehouse with DuckDB: every table is a view over its committed Parquet files (on HDFS or S3, the tables the statement names are copied under --data-dir/query-cache first, each file once)",
		cobra.ExactArgs(1), stderr, func(cmd *cobra.Command, cfg Config, args []string) error {
			return withWarehouse(cfg, func(wh fs.FS) error {
				tables, release, err := QueryViews(cmd.Context(), wh, filepath.Join(cfg.DataDir, "query-cache"), args[0])
				if err != nil {
					return err
				}
				defer release()
				db, err := query.Open(cmd.Context(), tables)
				if err != nil {
					return err
				}
				defer db.Close()
				res, err := db.Query(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return res.Write(stdout, format)
			})
		})
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}

func replayCommand(stdout, stderr io.Writer) *cobra.Command {
	var table string
	var grace time.Duration
	cmd := command("replay --table T", "Rebuild a table from its topic (earliest retained offset on) into a new generation, and swap it in atomically",
		cobra.NoArgs, stderr, func(_ *cobra.Command, cfg Config, _ []string) error {
			if table == "" {
				return fmt.Errorf("--table is required")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return RunReplay(ctx, cfg, table, stdout, grace)
		})
	cmd.Long = "The running pipeline does the work: it reads the table's topic again from its earliest retained offset into a new\n" +
		"generation while queries keep reading the current one; once the new generation has everything the current one has,\n" +
		"it is swapped in with one atomic write. Needs `minipipe run` running on the same brokers and warehouse."
	cmd.Flags().StringVar(&table, "table", "", "the table to rebuild")
	cmd.Flags().DurationVar(&grace, "grace", 30*time.Second, "how long the old generation's files stay for queries that started before the swap")
	return cmd
}

func compactCommand(stdout, stderr io.Writer) *cobra.Command {
	var opts iceberg.CompactOptions
	var table string
	var target ByteSize
	var grace, wait time.Duration
	cmd := command("compact --table T [--partition P]", "Rewrite a table's small files into large ones, atomically: a Hive table's partition moves to its new files in one metastore change, an Iceberg table's files are replaced in one snapshot (and old snapshots expire)",
		cobra.NoArgs, stderr, func(_ *cobra.Command, cfg Config, _ []string) error {
			if table == "" {
				return fmt.Errorf("--table is required")
			}
			if !layout.ValidTable(table) {
				return fmt.Errorf("--table %q is not a table name", table)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.TableFormat != "iceberg" {
				if opts.ExpireOlderThan > 0 {
					return fmt.Errorf("--expire-older-than expires Iceberg snapshots; a Hive table has none")
				}
				return RunCompactHive(ctx, cfg, table, HiveCompactOptions{Partition: opts.Partition, MinFiles: int(opts.MinInputFiles),
					TargetBytes: target.N, Grace: grace, Wait: wait}, stdout)
			}
			wh, err := fs.Open(cfg.WarehouseURL())
			if err != nil {
				return err
			}
			defer wh.Close()
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			icfg, err := IcebergConfig(cfg, wh, log)
			if err != nil {
				return err
			}
			cat, err := iceberg.New(icfg)
			if err != nil {
				return err
			}
			defer cat.Close()
			opts.TargetFileSize = target.N
			start := time.Now()
			r, err := cat.Compact(ctx, table, opts)
			if err != nil {
				return err
			}
			if r.FilesBefore == 0 {
				fmt.Fprintf(stdout, "%s.%s: no partition has %d or more small files\n", cfg.HiveDatabase, table, max(opts.MinInputFiles, 2))
			} else {
				fmt.Fprintf(stdout, "%s.%s: %d files (%d bytes) in %d partitions rewritten into %d (%d bytes) in snapshot %d, %v\n",
					cfg.HiveDatabase, table, r.FilesBefore, r.BytesBefore, r.Partitions, r.FilesAfter, r.BytesAfter, r.Snapshot, time.Since(start).Round(time.Millisecond))
			}
			if r.Skipped > 0 {
				fmt.Fprintf(stdout, "%d partitions could not be rewritten and keep their files (see the log)\n", r.Skipped)
			}
			if opts.ExpireOlderThan > 0 {
				fmt.Fprintf(stdout, "%d snapshots older than %v expired (the last %d kept)\n", r.Expired, opts.ExpireOlderThan, opts.RetainLast)
			}
			if r.Skipped > 0 && r.FilesBefore == 0 {
				return fmt.Errorf("no partition of %s could be compacted", table)
			}
			return nil
		})
	cmd.Long = "Readers see the old files or the new ones, never a mix; rows committed meanwhile are kept.\n\n" +
		"Hive tables (the default --table-format): the running pipeline does the work (needs `minipipe run` on the same brokers\n" +
		"and warehouse). The owner of each partition merges its files into a new directory under the partition's path\n" +
		"(_c<request>…), commits them in its manifest, and moves the metastore partition there in one alter_partition; later\n" +
		"commits go there too. The replaced files are removed after --grace.\n\n" +
		"Iceberg tables (--table-format iceberg, with the pipeline's --hive-metastore and --warehouse): one replace snapshot.\n" +
		"Expired snapshots leave the metadata; their files stay in the warehouse."
	cmd.Flags().StringVar(&table, "table", "", "the table to compact")
	cmd.Flags().StringVar(&opts.Partition, "partition", "", "only this partition, as its path: dt=2026-11-25[/hr=07]")
	target = ByteSize{N: 128 << 20}
	cmd.Flags().Var(&target, "target-file-size", "size of the rewritten files (Iceberg: files under 3/4 of it are small; Hive: the bytes merged into one file, at most)")
	cmd.Flags().UintVar(&opts.MinInputFiles, "min-files", 2, "the fewest small files of a partition worth a rewrite")
	cmd.Flags().DurationVar(&opts.ExpireOlderThan, "expire-older-than", 0, "also expire snapshots older than this (0: none; Iceberg tables)")
	cmd.Flags().DurationVar(&grace, "grace", 2*time.Minute, "how long a Hive table's replaced files stay, once the metastore moved to the new ones, for queries that started before (at least the metastore cache of the engines reading it plus their longest query)")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for the pipeline to compact a Hive table")
	cmd.Flags().IntVar(&opts.RetainLast, "retain-last", 50, "snapshots always kept by the expiry (Iceberg tables)")
	return cmd
}
