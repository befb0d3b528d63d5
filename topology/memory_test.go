package topology

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"1073741824", 1 << 30, false},
		{"1GiB", 1 << 30, false},
		{"1gib", 1 << 30, false},
		{"512MiB", 512 << 20, false},
		{"1.5GB", 1_500_000_000, false},
		{" 64 KiB ", 64 << 10, false},
		{"100B", 100, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"-1GiB", 0, true},
		{"1XB", 0, true},
		{"NaN", 0, true},
		{"1e30", 0, true},
		{"9999999TiB", 0, true},
	} {
		got, err := ParseByteSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// The limit in force: the flag (command line, file or environment) when given, else GOMEMLIMIT when the
// environment has it (the Go runtime read it at start), else the 1GiB default; the write budget is a quarter.
func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parse := func(args ...string) Config {
		t.Helper()
		cfg := DefaultConfig()
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		cfg.runFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := load(fs, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	cfg := parse()
	applyMemoryLimit(&cfg, log)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 || cfg.writeBudget() != 256<<20 {
		t.Errorf("default: limit %d, budget %d", got, cfg.writeBudget())
	}

	file := filepath.Join(t.TempDir(), "minipipe.yaml")
	if err := os.WriteFile(file, []byte("memory-limit: 512MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "700MiB")
	debug.SetMemoryLimit(700 << 20) // as the runtime would have at start
	cfg = parse("--config", file)
	applyMemoryLimit(&cfg, log)
	if got := debug.SetMemoryLimit(-1); got != 512<<20 || cfg.writeBudget() != 128<<20 {
		t.Errorf("from the config file: limit %d, budget %d", got, cfg.writeBudget())
	}

	debug.SetMemoryLimit(700 << 20)
	cfg = parse()
	applyMemoryLimit(&cfg, log)
	if got := debug.SetMemoryLimit(-1); got != 700<<20 || cfg.MemoryLimit.N != 700<<20 || cfg.writeBudget() != 175<<20 {
		t.Errorf("GOMEMLIMIT: limit %d, config %d, budget %d", got, cfg.MemoryLimit.N, cfg.writeBudget())
	}

	cfg = parse("--memory-limit", "0")
	applyMemoryLimit(&cfg, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 || cfg.writeBudget() != defaultWriteBudget {
		t.Errorf("none: limit %d, budget %d", got, cfg.writeBudget())
	}

	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	c := DefaultConfig()
	c.runFlags(fs)
	if err := fs.Parse([]string{"--memory-limit", "lots"}); err == nil {
		t.Error("--memory-limit lots accepted")
	}
}
