package testkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minipipe/minipipe/topology"
)

// App is a minipipe running in the test process.
type App struct {
	Config   topology.Config
	REST     string // base URL of the REST Proxy API
	Registry string // base URL of the Schema Registry API
	HTTP     string // base URL of health and metrics
	stop     func()
}

// Stop stops the app (also done at the end of the test).
func (a *App) Stop() { a.stop() }

// TestConfig is a configuration for a test instance: free ports, its own data directory and its own
// registry topic on the given brokers, so tests sharing a broker do not share a registry.
func TestConfig(t testing.TB, brokers []string) topology.Config {
	cfg := topology.DefaultConfig()
	cfg.Brokers = brokers
	cfg.DataDir = t.TempDir()
	cfg.RestAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cfg.RegistryAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cfg.RegistryTopic = "_" + strings.TrimPrefix(Topic(t, "mpschemas"), "_")
	cfg.ConsoleTopic = "_" + strings.TrimPrefix(Topic(t, "mpconsole"), "_")
	cfg.PipelineName = Topic(t, "mp")
	// Tests share a broker: each pipeline takes only the topics its test names with TopicPrefix.
	cfg.Topics = regexp.QuoteMeta(TopicPrefix(t)) + ".*"
	if lvl := os.Getenv("MINIPIPE_TEST_LOG_LEVEL"); lvl != "" { // debug, to chase a failure
		cfg.LogLevel = lvl
	}
	return cfg
}

// StartApp runs minipipe in-process with cfg and waits until it is ready.
func StartApp(t testing.TB, cfg topology.Config) *App {
	t.Helper()
	logw := io.Writer(io.Discard)
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	app, err := topology.NewApp(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = app.Run(ctx); close(done) }()
	var once sync.Once
	sc := Scheme(cfg)
	a := &App{Config: cfg, REST: sc + cfg.RestAddr, Registry: sc + cfg.RegistryAddr, HTTP: sc + cfg.HTTPAddr}
	a.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
				if runErr != nil {
					t.Errorf("minipipe stopped with: %v", runErr)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("minipipe did not stop within 60s")
			}
		})
	}
	t.Cleanup(a.stop)
	if err := WaitReady(a.HTTP, 90*time.Second, done); err != nil {
		t.Fatal(err)
	}
	return a
}

// probe polls readiness; /readyz is open and says nothing secret, so an https listener's certificate is
// not checked here (the tests of TLS check it with the CA).
var probe = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// WaitReady polls /readyz until it answers 200; exited, when closed, reports an early exit.
func WaitReady(httpBase string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("minipipe exited before it was ready")
		default:
		}
		resp, err := probe.Get(httpBase + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("minipipe at %s not ready after %v", httpBase, timeout)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds minipipe for this test binary once and returns its path. It is built with the failpoints
// the crash tests use (MINIPIPE_FAILPOINT), which production binaries do not have.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "minipipe-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "minipipe")
		cmd := exec.Command("go", "build", "-tags", "failpoints", "-o", binPath, "./cmd/minipipe")
		cmd.Dir = Root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Proc is minipipe running as its own process.
type Proc struct {
	Config   topology.Config
	REST     string
	Registry string
	HTTP     string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	exited   chan struct{}
	mu       sync.Mutex
}

// Args renders a configuration as minipipe run flags.
func Args(cfg topology.Config) []string {
	args := []string{"run",
		"--brokers", strings.Join(cfg.Brokers, ","),
		"--data-dir", cfg.DataDir,
		"--rest-addr", cfg.RestAddr,
		"--registry-addr", cfg.RegistryAddr,
		"--http-addr", cfg.HTTPAddr,
		"--registry-topic", cfg.RegistryTopic,
		"--console-topic", cfg.ConsoleTopic,
		"--topic-partitions", strconv.Itoa(cfg.TopicPartitions),
		"--pipeline-name", cfg.PipelineName,
		"--topics", cfg.Topics,
		"--rotate-interval", cfg.RotateInterval.String(),
		"--flush-size", strconv.FormatInt(cfg.FlushSize, 10),
		"--partition-by", cfg.PartitionBy,
		"--warehouse", cfg.WarehouseURL(),
		"--rows-partitions", strconv.Itoa(cfg.RowsPartitions),
		"--catalog", cfg.Catalog,
		"--hive-metastore", cfg.HiveMetastore,
		"--hive-database", cfg.HiveDatabase,
		"--timestamp-field", cfg.TimestampField,
		"--manifest-checkpoint-every", strconv.Itoa(cfg.CheckpointEvery),
		"--kafka-delivery-timeout", cfg.DeliveryTimeout.String(),
		"--produce-timeout", cfg.ProduceTimeout.String(),
		"--registry-timeout", cfg.RegistryTimeout.String(),
		"--idempotency-window", cfg.IdempotencyWindow.String(),
		"--allowed-lateness", cfg.AllowedLateness.String(),
		"--log-level", cfg.LogLevel,
	}
	if cfg.Trino != "" {
		args = append(args, "--trino", cfg.Trino)
	}
	if cfg.TableFormat != "" && cfg.TableFormat != "hive" {
		args = append(args, "--table-format", cfg.TableFormat)
	}
	if cfg.IcebergCatalog == "rest" {
		args = append(args, "--iceberg-catalog", "rest", "--iceberg-rest-uri", cfg.IcebergRESTURI)
	}
	if cfg.CompactComplete {
		args = append(args, "--compact-complete")
	}
	if cfg.AuthFile != "" {
		args = append(args, "--auth-file", cfg.AuthFile)
	}
	if cfg.InsecureNoAuth {
		args = append(args, "--insecure-no-auth")
	}
	if cfg.TLSCert != "" {
		args = append(args, "--tls-cert", cfg.TLSCert, "--tls-key", cfg.TLSKey)
	}
	for flag, v := range map[string]string{"--kafka-tls-ca": cfg.KafkaTLSCA, "--kafka-tls-cert": cfg.KafkaTLSCert, "--kafka-tls-key": cfg.KafkaTLSKey,
		"--kafka-tls-server-name": cfg.KafkaTLSServerName, "--kafka-sasl-mechanism": cfg.KafkaSASLMechanism,
		"--kafka-sasl-username": cfg.KafkaSASLUsername, "--kafka-sasl-password-file": cfg.KafkaSASLPasswordFile,
		"--s3-endpoint": cfg.S3Endpoint, "--s3-region": cfg.S3Region} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if cfg.KafkaTLS {
		args = append(args, "--kafka-tls")
	}
	return args
}

// Scheme is the scheme of a configuration's listeners: https with --tls-cert.
func Scheme(cfg topology.Config) string {
	if cfg.TLSCert != "" {
		return "https://"
	}
	return "http://"
}

// StartProcess runs bin/minipipe with cfg (plus extra flags) and waits until it is ready. The process is
// killed at the end of the test.
func StartProcess(t testing.TB, cfg topology.Config, extra ...string) *Proc {
	t.Helper()
	return StartProcessEnv(t, cfg, nil, extra...)
}

// StartProcessEnv is StartProcess with extra environment variables (MINIPIPE_FAILPOINT=…).
func StartProcessEnv(t testing.TB, cfg topology.Config, env []string, extra ...string) *Proc {
	t.Helper()
	return startArgs(t, cfg, env, append(Args(cfg), extra...))
}

// StartConfigFile runs bin/minipipe on a config file, the way a deployment runs it, with only what is this
// instance's own on the command line: its data directory and listener addresses (from cfg). cfg is what the
// file holds, for the test to know.
func StartConfigFile(t testing.TB, cfg topology.Config, file string) *Proc {
	t.Helper()
	return startArgs(t, cfg, nil, []string{"run", "--config", file, "--data-dir", cfg.DataDir,
		"--rest-addr", cfg.RestAddr, "--registry-addr", cfg.RegistryAddr, "--http-addr", cfg.HTTPAddr})
}

func startArgs(t testing.TB, cfg topology.Config, env, args []string) *Proc {
	t.Helper()
	sc := Scheme(cfg)
	p := &Proc{Config: cfg, REST: sc + cfg.RestAddr, Registry: sc + cfg.RegistryAddr, HTTP: sc + cfg.HTTPAddr,
		log: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(Binary(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	var out io.Writer = &lockedWriter{p}
	// MINIPIPE_TEST_LOG_DIR keeps every process's whole log in a file there, named by test and port.
	if dir := os.Getenv("MINIPIPE_TEST_LOG_DIR"); dir != "" {
		name := strings.NewReplacer("/", "_", ":", "_").Replace(t.Name() + "-" + cfg.RestAddr + "-" + time.Now().Format("150405.000"))
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out = io.MultiWriter(out, f)
	}
	p.cmd.Stdout = out
	p.cmd.Stderr = out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("minipipe log (%s):\n%s", cfg.RestAddr, p.Log())
		}
	})
	if err := WaitReady(p.HTTP, 90*time.Second, p.exited); err != nil {
		t.Fatalf("%v\n%s", err, p.Log())
	}
	return p
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.log.Write(b)
}

// Log returns what the process has written so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// WaitExit waits for the process to end by itself; false after timeout.
func (p *Proc) WaitExit(timeout time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop asks the process to shut down (SIGTERM) and waits up to a minute for it, then kills it.
func (p *Proc) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	if !p.WaitExit(time.Minute) {
		p.Kill()
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends a signal (SIGSTOP and SIGCONT freeze and wake the process).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// PeakRSS is the process's peak resident memory so far (VmHWM), in bytes.
func (p *Proc) PeakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// Metric sums the samples of a Prometheus metric family on the process's /metrics whose labels contain
// every one of labels ("name=\"value\""); 0 when there are none.
func (p *Proc) Metric(name string, labels ...string) float64 {
	return Metric(p.HTTP, name, labels...)
}

// Metric reads /metrics at httpBase and sums a family's matching samples (see Proc.Metric).
func Metric(httpBase, name string, labels ...string) float64 {
	cl := http.Client{Timeout: 5 * time.Second} // a frozen process does not answer
	resp, err := cl.Get(httpBase + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// Kill sends SIGKILL and waits for the process to go.
func (p *Proc) Kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}
