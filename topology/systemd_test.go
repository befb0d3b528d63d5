package topology

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestSystemdUnit: deploy/systemd's unit passes `systemd-analyze verify` without a warning, runs `minipipe run
// --config` on the example file, and that file holds only keys minipipe knows.
func TestSystemdUnit(t *testing.T) {
	dir := filepath.Join("..", "deploy", "systemd")
	unit, err := os.ReadFile(filepath.Join(dir, "minipipe.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/minipipe run --config /etc/minipipe/minipipe.yaml") {
		t.Fatal("the unit does not run minipipe with its config file")
	}
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	cfg.runFlags(fs)
	if err := fs.Parse([]string{"--config", filepath.Join(dir, "minipipe.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := load(fs, &cfg); err != nil {
		t.Fatalf("the example config: %v", err)
	}
	if cfg.Catalog != "hive" || cfg.AuthFile == "" || cfg.TLSCert == "" || len(cfg.Brokers) != 3 {
		t.Fatalf("the example config reads as %+v", cfg)
	}
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping systemd-analyze")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: make test installs it (Debian package systemd)")
	}
	// Verified as installed, but with an executable that exists here.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "minipipe.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/minipipe", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: a key systemd does not know is reported.
	bad := strings.Replace(string(unit), "[Service]", "[Service]\nRestartEvery=1", 1)
	if err := os.WriteFile(tmp, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", tmp).CombinedOutput(); !strings.Contains(string(out), "RestartEvery") {
		t.Fatalf("an unknown key went unreported: %s", out)
	}
}
