package topology

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
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
	root.AddCommand(runCommand(stderr), versionCommand(stdout))
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
			if err := load(cmd.Flags()); err != nil {
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
