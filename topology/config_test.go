package topology

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

// A flag on the command line beats the environment, which beats the config file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "minipipe.yaml")
	if err := os.WriteFile(file, []byte("brokers: [a:1, b:2]\ndata-dir: /from/file\nrest-addr: 127.0.0.1:1111\ntopic-partitions: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MINIPIPE_DATA_DIR", "/from/env")
	t.Setenv("MINIPIPE_AUTO_CREATE_TOPICS", "false")
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	cfg.runFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--topic-partitions", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := load(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Brokers, []string{"a:1", "b:2"}) {
		t.Errorf("brokers from the file: %v", cfg.Brokers)
	}
	if cfg.DataDir != "/from/env" {
		t.Errorf("the environment beats the file: %q", cfg.DataDir)
	}
	if cfg.RestAddr != "127.0.0.1:1111" || cfg.TopicPartitions != 3 || cfg.AutoCreateTopics {
		t.Errorf("got %+v", cfg)
	}
	if cfg.RegistryAddr != "127.0.0.1:8081" {
		t.Errorf("default kept: %q", cfg.RegistryAddr)
	}
}

func TestConfigFileUnknownKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(file, []byte("brokrs: x:1\n"), 0o644)
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	cfg.runFlags(fs)
	_ = fs.Parse([]string{"--config", file})
	if err := load(fs, &cfg); err == nil {
		t.Fatal("a misspelt key must be an error")
	}
}
