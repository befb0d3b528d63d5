// Package browser starts Debian's Chromium, headless, for the console's browser tests and benchmarks, and
// saves screenshots. It stands apart from testkit so that the console's own tests can use it.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of Debian's Chromium, installed by deploy/chromium.sh when missing (make test
// runs it first; here it is run again, a no-op once installed).
func Chromium(t testing.TB) string {
	t.Helper()
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping a test that needs Chromium")
	}
	out, err := exec.Command(filepath.Join(root(), "deploy", "chromium.sh")).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("deploy/chromium.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// Browser starts a headless Chromium for the test, with its own profile in a temporary directory and no
// background traffic (the machine's network is closed), and returns its chromedp context, ended by timeout
// (each step should bound itself with a shorter one).
func Browser(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1360, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser (without a deadline: it would end the browser)
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	stop := time.AfterFunc(timeout, func() { t.Errorf("the browser test ran longer than %v", timeout); cancel() })
	t.Cleanup(func() { stop.Stop(); cancel(); acancel() })
	return ctx
}

// Screenshot saves a PNG of the whole page as NAME.png in $MINIPIPE_SCREENSHOTS (make screenshots points
// it at docs/console) or else in a temporary directory, and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	dir := os.Getenv("MINIPIPE_SCREENSHOTS")
	if dir == "" {
		dir = screenshotDir(t)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d KiB)", p, len(buf)>>10)
	return p
}

var (
	mu             sync.Mutex
	screenshotDirs = map[testing.TB]string{}
)

// root is the repository root (the directory holding go.mod), from the working directory of the test.
func root() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func screenshotDir(t testing.TB) string {
	mu.Lock()
	defer mu.Unlock()
	if d, ok := screenshotDirs[t]; ok {
		return d
	}
	d := t.TempDir()
	screenshotDirs[t] = d
	return d
}
