package topology

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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

// --iceberg-catalog rest: what it needs, and its credential read without ever showing it.
func TestIcebergRESTConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.TableFormat, c.IcebergCatalog = "iceberg", "rest"
		return c
	}
	c := base()
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "--iceberg-rest-uri") {
		t.Fatalf("rest without a URI: %v", err)
	}
	c.IcebergRESTURI = "http://127.0.0.1:8181"
	if err := c.validate(); err != nil {
		t.Fatalf("rest with a URI: %v", err)
	}
	c.Catalog, c.HiveMetastore = "hive", "thrift://127.0.0.1:9083"
	if err := c.validate(); err == nil {
		t.Fatal("rest and --catalog hive at once were accepted")
	}
	c = base()
	c.IcebergRESTURI, c.HiveDatabase = "http://127.0.0.1:8181", "../etc"
	if err := c.validate(); err == nil {
		t.Fatal("a namespace that is not a name was accepted")
	}
	dir := t.TempDir()
	for _, tc := range []struct{ line, creds, token, err string }{
		{"client:s3cr3t-value\n", "client:s3cr3t-value", "", ""},
		{"token:eyJ-s3cr3t-value\n", "", "eyJ-s3cr3t-value", ""},
		{"s3cr3t-value-without-colon\n", "", "", "neither"},
		{"\n", "", "", "empty"},
	} {
		file := filepath.Join(dir, "cred")
		if err := os.WriteFile(file, []byte(tc.line), 0o600); err != nil {
			t.Fatal(err)
		}
		c := base()
		c.IcebergRESTURI, c.IcebergRESTCredentialFile = "http://127.0.0.1:8181", file
		got, err := c.IcebergRESTCredential()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%q: error %v", tc.line, err)
			}
			continue
		}
		if err != nil || got.ClientCredentials != tc.creds || got.Token != tc.token {
			t.Errorf("%q: %+v %v", tc.line, got, err)
		}
	}
	t.Setenv(IcebergRESTCredentialEnv, "token:from-env")
	c = base()
	if got, err := c.IcebergRESTCredential(); err != nil || got.Token != "from-env" {
		t.Errorf("from the environment: %+v %v", got, err)
	}
}

func TestCompactCompleteConfig(t *testing.T) {
	for _, tc := range []struct {
		format   string
		lateness time.Duration
		ok       bool
	}{
		{"iceberg", time.Minute, true},
		{"iceberg", 0, false},
		{"hive", time.Minute, false},
	} {
		c := DefaultConfig()
		c.TableFormat, c.IcebergCatalog, c.IcebergRESTURI = tc.format, "rest", "http://127.0.0.1:8181"
		if tc.format == "hive" {
			c.IcebergCatalog, c.IcebergRESTURI = "", ""
		}
		c.AllowedLateness, c.CompactComplete = tc.lateness, true
		err := c.validate()
		if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "--compact-complete") {
			t.Errorf("%s, lateness %v: %v", tc.format, tc.lateness, err)
		}
	}
}
