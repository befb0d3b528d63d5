package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Helm returns the path of the pinned Helm deploy/helm.sh builds from the Go module proxy (once per machine;
// make test builds it first), or $MINIPIPE_TEST_HELM.
func Helm(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MINIPIPE_TEST_HELM"); p != "" {
		return p
	}
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping a test that needs Helm (deploy/helm.sh builds it)")
	}
	cmd := exec.Command(filepath.Join(Root(), "deploy", "helm.sh"), "--path")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/helm.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
