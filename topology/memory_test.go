package topology

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
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
		{"4.35MB", 4_350_000, false},
		{"0.4", 0, true}, // less than a byte: refused rather than taken as 0 (none)
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
	small := DefaultConfig()
	small.MemoryLimit = ByteSize{N: 1 << 20, Given: true}
	if err := small.validate(); err == nil || !strings.Contains(err.Error(), "at least 128MiB") {
		t.Errorf("--memory-limit 1MiB: %v", err)
	}
}

// The Kafka security flags: the password from its file (first line) or the environment, and errors that
// name the flag at fault and never the password.
func TestKafkaSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(KafkaPasswordEnv, "")
	os.Unsetenv(KafkaPasswordEnv)
	base := DefaultConfig()
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		env  string
		want string // the security's description, or the error's text
		err  bool
	}{
		{"none", func(c *Config) {}, "", "plaintext", false},
		{"tls with system roots", func(c *Config) { c.KafkaTLS = true }, "", "TLS", false},
		{"scram from a file", func(c *Config) {
			c.KafkaSASLMechanism, c.KafkaSASLUsername, c.KafkaSASLPasswordFile = "scram-sha-512", "mp", pwFile
		}, "", "SASL SCRAM-SHA-512 as mp", false},
		{"plain from the environment", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername = "PLAIN", "mp" }, "env-pw", "SASL PLAIN as mp", false},
		{"no password", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername = "PLAIN", "mp" }, "", "needs --kafka-sasl-password-file or MINIPIPE_KAFKA_SASL_PASSWORD", true},
		{"no user", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLPasswordFile = "PLAIN", pwFile }, "", "needs --kafka-sasl-username", true},
		{"user without mechanism", func(c *Config) { c.KafkaSASLUsername = "mp" }, "", "needs --kafka-sasl-mechanism", true},
		{"unknown mechanism", func(c *Config) { c.KafkaSASLMechanism = "GSSAPI" }, "", "--kafka-sasl-mechanism", true},
		{"missing CA", func(c *Config) { c.KafkaTLSCA = filepath.Join(dir, "nope.pem") }, "", "--kafka-tls-*", true},
		{"not a CA", func(c *Config) { c.KafkaTLSCA = pwFile }, "", "no PEM certificate", true},
		{"cert without key", func(c *Config) { c.KafkaTLSCert = pwFile }, "", "both its certificate file and its key file", true},
	} {
		if tc.env != "" {
			t.Setenv(KafkaPasswordEnv, tc.env)
		} else {
			os.Unsetenv(KafkaPasswordEnv)
		}
		c := base
		tc.set(&c)
		s, err := c.KafkaSecurity()
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: the error shows the password", tc.name)
			}
			continue
		}
		if err != nil || !strings.Contains(s.String(), tc.want) {
			t.Errorf("%s: %q %v, want %q", tc.name, s.String(), err, tc.want)
		}
		if strings.Contains(s.String(), "s3cret") || strings.Contains(s.String(), "env-pw") {
			t.Errorf("%s: the description shows the password", tc.name)
		}
		if tc.name == "scram from a file" && s.Password != "s3cret-pw" || tc.name == "plain from the environment" && s.Password != "env-pw" {
			t.Errorf("%s: password %q", tc.name, s.Password)
		}
	}
}
