package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The rest of the seed's stack — HDFS, the Hive Metastore and Trino — as real processes started by the
// project's scripts (deploy/hdfs, deploy/hms, deploy/trino) from Maven Central jars. Like Kafka, each is
// shared by the tests of a binary: the one named by MINIPIPE_TEST_HDFS / MINIPIPE_TEST_HMS /
// MINIPIPE_TEST_TRINO (make test starts them once), or else one started here on first use and stopped by
// Main. Tests that stop or kill a service start their own.

func runScript(ctx context.Context, script string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(Root(), "deploy", script), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out.String())
	}
	return nil
}

// HDFSCluster is a real NameNode and DataNode run by deploy/hdfs/hdfs.sh.
type HDFSCluster struct {
	Dir  string
	Port int
}

// URL is hdfs://127.0.0.1:PORT/path.
func (h *HDFSCluster) URL(path string) string {
	return "hdfs://127.0.0.1:" + strconv.Itoa(h.Port) + "/" + strings.TrimPrefix(path, "/")
}

func (h *HDFSCluster) script(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return runScript(ctx, "hdfs/hdfs.sh", append(args, "--dir", h.Dir, "--port", strconv.Itoa(h.Port))...)
}

// Start starts both daemons and waits until HDFS takes writes.
func (h *HDFSCluster) Start() error { return h.script("start") }

// Kill kills both daemons with SIGKILL.
func (h *HDFSCluster) Kill() error { return h.script("kill") }

// StopNameNode stops the NameNode only (an outage); StartNameNode brings it back.
func (h *HDFSCluster) StopNameNode() error  { return h.script("stop-namenode") }
func (h *HDFSCluster) StartNameNode() error { return h.script("start-namenode") }

// StartHDFS starts a dedicated HDFS for one test.
func StartHDFS(t testing.TB) *HDFSCluster {
	t.Helper()
	skipReal(t)
	h := &HDFSCluster{Dir: t.TempDir(), Port: FreePort(t)}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Kill() })
	return h
}

// Metastore is a real Hive Metastore (Derby) run by deploy/hms/hms.sh.
type Metastore struct {
	Dir   string
	Port  int
	HDFS  string // hdfs://host:port of its default warehouse
	S3Env string // optional: an env file (S3EnvFile) for S3A on s3a:// locations
}

// URI is thrift://127.0.0.1:PORT.
func (m *Metastore) URI() string { return "thrift://127.0.0.1:" + strconv.Itoa(m.Port) }

func (m *Metastore) script(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args = append(args, "--dir", m.Dir, "--port", strconv.Itoa(m.Port), "--hdfs", m.HDFS)
	if m.S3Env != "" {
		args = append(args, "--s3-env", m.S3Env)
	}
	return runScript(ctx, "hms/hms.sh", args...)
}

// Start starts the metastore and waits for its Thrift port.
func (m *Metastore) Start() error { return m.script("start") }

// Stop stops it (SIGTERM); its Derby database stays for a restart.
func (m *Metastore) Stop() error { return m.script("stop") }

// Kill kills it with SIGKILL.
func (m *Metastore) Kill() error { return m.script("kill") }

// StartMetastore starts a dedicated metastore for one test, on the shared HDFS.
func StartMetastore(t testing.TB) *Metastore {
	t.Helper()
	skipReal(t)
	m := &Metastore{Dir: t.TempDir(), Port: FreePort(t), HDFS: HDFS(t)}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Kill() })
	return m
}

// TrinoServer is a real Trino coordinator run by deploy/trino/trino.sh.
type TrinoServer struct {
	Dir       string
	Port      int
	Metastore string
	S3Env     string // optional: an env file (S3EnvFile) for the native S3 file system
	// IcebergREST, optional, is a REST catalog (IcebergREST) the catalog iceberg_rest reads.
	IcebergREST string
}

// URL is http://127.0.0.1:PORT.
func (s *TrinoServer) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

func (s *TrinoServer) script(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	args = append(args, "--dir", s.Dir, "--port", strconv.Itoa(s.Port), "--metastore", s.Metastore)
	if s.IcebergREST != "" {
		args = append(args, "--iceberg-rest", s.IcebergREST)
	}
	if s.S3Env != "" {
		args = append(args, "--s3-env", s.S3Env)
	}
	return runScript(ctx, "trino/trino.sh", args...)
}

func skipReal(t testing.TB) {
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping a test that needs real services")
	}
}

type shared struct {
	once sync.Once
	val  string
	err  error
	stop func()
}

var (
	sharedHDFS, sharedHMS, sharedTrino, sharedIcebergREST shared
	sharedStopsMu                                         sync.Mutex
	sharedStops                                           []func()
)

func (s *shared) get(t testing.TB, env string, start func() (string, func(), error)) string {
	t.Helper()
	skipReal(t)
	if v := os.Getenv(env); v != "" {
		return v
	}
	s.once.Do(func() {
		// A start that ends the test (t.Fatal in a service it needs) leaves this error for every later test,
		// instead of an empty address.
		s.err = fmt.Errorf("starting it failed in an earlier test (%s)", t.Name())
		s.val, s.stop, s.err = start()
		if s.stop != nil {
			sharedStopsMu.Lock()
			sharedStops = append(sharedStops, s.stop)
			sharedStopsMu.Unlock()
		}
	})
	if s.err != nil {
		t.Fatalf("starting a shared service: %v", s.err)
	}
	return s.val
}

// HDFS returns hdfs://127.0.0.1:PORT of an HDFS shared by the tests (MINIPIPE_TEST_HDFS, or started here).
// Tests keep out of each other's way with their own warehouse path.
func HDFS(t testing.TB) string {
	return sharedHDFS.get(t, "MINIPIPE_TEST_HDFS", func() (string, func(), error) {
		dir, err := os.MkdirTemp("", "minipipe-hdfs-")
		if err != nil {
			return "", nil, err
		}
		h := &HDFSCluster{Dir: dir, Port: FreePort(t)}
		err = h.Start()
		return "hdfs://127.0.0.1:" + strconv.Itoa(h.Port), func() { _ = h.Kill(); _ = os.RemoveAll(dir) }, err
	})
}

// SharedMetastore returns the thrift:// URI of a metastore shared by the tests (MINIPIPE_TEST_HMS, or
// started here on the shared HDFS, with S3A on the shared S3 server). Tests keep out of each other's way with
// their own database.
func SharedMetastore(t testing.TB) string {
	hdfs := HDFS(t)
	return sharedHMS.get(t, "MINIPIPE_TEST_HMS", func() (string, func(), error) {
		dir, err := os.MkdirTemp("", "minipipe-hms-")
		if err != nil {
			return "", nil, err
		}
		m := &Metastore{Dir: dir, Port: FreePort(t), HDFS: hdfs, S3Env: S3EnvFile(t)}
		err = m.Start()
		return m.URI(), func() { _ = m.Kill(); _ = os.RemoveAll(dir) }, err
	})
}

// Trino returns the URL of a Trino shared by the tests (MINIPIPE_TEST_TRINO, or started here), whose
// catalogs "hive" and "iceberg" read the shared metastore, on HDFS and on the shared S3 server, and
// "iceberg_rest" the shared Iceberg REST catalog.
func Trino(t testing.TB) string {
	hms := SharedMetastore(t)
	return sharedTrino.get(t, "MINIPIPE_TEST_TRINO", func() (string, func(), error) {
		dir, err := os.MkdirTemp("", "minipipe-trino-")
		if err != nil {
			return "", nil, err
		}
		s := &TrinoServer{Dir: dir, Port: FreePort(t), Metastore: hms, S3Env: S3EnvFile(t), IcebergREST: IcebergREST(t)}
		err = s.script("start")
		return s.URL(), func() { _ = s.script("kill"); _ = os.RemoveAll(dir) }, err
	})
}

// IcebergREST returns the http:// URI of an Iceberg REST catalog shared by the tests (MINIPIPE_TEST_ICEBERG_REST,
// or Iceberg's own test server started here by deploy/iceberg-rest/rest.sh). Tests keep out of each other's way
// with their own namespace.
func IcebergREST(t testing.TB) string {
	return sharedIcebergREST.get(t, "MINIPIPE_TEST_ICEBERG_REST", func() (string, func(), error) {
		dir, err := os.MkdirTemp("", "minipipe-iceberg-rest-")
		if err != nil {
			return "", nil, err
		}
		port := strconv.Itoa(FreePort(t))
		script := filepath.Join(Root(), "deploy", "iceberg-rest", "rest.sh")
		stop := func() { _ = exec.Command(script, "kill", "--dir", dir).Run(); _ = os.RemoveAll(dir) }
		if out, err := exec.Command(script, "start", "--dir", dir, "--port", port, "--s3-env", S3EnvFile(t)).CombinedOutput(); err != nil {
			stop()
			return "", nil, &startError{what: "deploy/iceberg-rest/rest.sh start", err: err, out: out}
		}
		return "http://127.0.0.1:" + port, stop, nil
	})
}

// StartTrino starts a dedicated Trino for one test, its catalog "hive" reading the given metastore.
func StartTrino(t testing.TB, metastore string) string {
	t.Helper()
	skipReal(t)
	s := &TrinoServer{Dir: t.TempDir(), Port: FreePort(t), Metastore: metastore}
	if err := s.script("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.script("kill") })
	return s.URL()
}

// stopShared stops the shared services this binary started.
func stopShared() {
	sharedStopsMu.Lock()
	defer sharedStopsMu.Unlock()
	for i := len(sharedStops) - 1; i >= 0; i-- {
		sharedStops[i]()
	}
	sharedStops = nil
}

// TrinoQuery runs one statement through Trino's HTTP API (POST /v1/statement, then following nextUri)
// TrinoCountDistinct returns count(*) and count(DISTINCT col) of a table, through Trino.
func TrinoCountDistinct(trino, table, col string) (int, int, error) {
	rows, err := TrinoQuery(trino, countDistinctSQL(table, col))
	if err != nil {
		return 0, 0, err
	}
	return parseCounts(rows)
}

// and returns the rows as text: NULL for nulls, JSON for nested values.
func TrinoQuery(base, sql string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/statement", strings.NewReader(sql))
	req.Header.Set("X-Trino-User", "minipipe-test")
	req.Header.Set("X-Trino-Time-Zone", "UTC")
	var rows [][]string
	for {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("trino: HTTP %d: %s", resp.StatusCode, body)
		}
		var r struct {
			NextURI string  `json:"nextUri"`
			Data    [][]any `json:"data"`
			Error   *struct {
				Message   string `json:"message"`
				ErrorName string `json:"errorName"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("trino: %v: %s", err, body)
		}
		if r.Error != nil {
			return nil, fmt.Errorf("trino: %s: %s", r.Error.ErrorName, r.Error.Message)
		}
		for _, row := range r.Data {
			out := make([]string, len(row))
			for i, v := range row {
				switch x := v.(type) {
				case nil:
					out[i] = "NULL"
				case string:
					out[i] = x
				case float64:
					out[i] = strconv.FormatFloat(x, 'f', -1, 64)
				case bool:
					out[i] = strconv.FormatBool(x)
				default:
					b, _ := json.Marshal(x)
					out[i] = string(b)
				}
			}
			rows = append(rows, out)
		}
		if r.NextURI == "" {
			return rows, nil
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, r.NextURI, nil)
		req.Header.Set("X-Trino-User", "minipipe-test")
	}
}

// WaitTrino runs sql until check accepts its rows (errors, e.g. a table not registered yet, are retried).
func WaitTrino(t testing.TB, base, sql string, timeout time.Duration, check func([][]string) bool) [][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var rows [][]string
	var err error
	for {
		rows, err = TrinoQuery(base, sql)
		if err == nil && check(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("trino %q: after %v: rows %v, error %v", sql, timeout, rows, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
