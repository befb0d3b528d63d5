package testkit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	sharedS3  shared
	s3EnvOnce sync.Once
	s3EnvPath string
	s3EnvErr  error
)

// S3Bucket is the bucket of the test S3 server.
const S3Bucket = "minipipe"

// S3 returns the endpoint (http://127.0.0.1:PORT) of an S3-compatible server shared by the tests, with the
// bucket S3Bucket: MINIPIPE_TEST_S3 (make test starts one and exports its AWS_* credentials), or moto's server
// started here by deploy/s3/s3.sh, its credentials then set in this process's environment for the AWS SDK's
// chain (and the minipipe processes the tests start). AWS_ENDPOINT_URL_S3 is set to it. Tests keep out of each
// other's way with their own prefix.
func S3(t testing.TB) string {
	endpoint := sharedS3.get(t, "MINIPIPE_TEST_S3", func() (string, func(), error) {
		dir, err := os.MkdirTemp("", "minipipe-s3-")
		if err != nil {
			return "", nil, err
		}
		script := filepath.Join(Root(), "deploy", "s3", "s3.sh")
		port := strconv.Itoa(FreePort(t))
		stop := func() { _ = exec.Command(script, "stop", "--dir", dir).Run(); _ = os.RemoveAll(dir) }
		if out, err := exec.Command(script, "start", "--dir", dir, "--port", port).CombinedOutput(); err != nil {
			stop()
			return "", nil, &startError{what: "deploy/s3/s3.sh start", err: err, out: out}
		}
		if err := exportEnvFile(filepath.Join(dir, "env")); err != nil {
			stop()
			return "", nil, err
		}
		return "http://127.0.0.1:" + port, stop, nil
	})
	// The warehouses the test opens itself (testkit.Query, fs.Open) reach the server through the SDK's own
	// variable; the minipipe processes are given --s3-endpoint.
	if os.Getenv("AWS_ENDPOINT_URL_S3") != endpoint {
		if err := os.Setenv("AWS_ENDPOINT_URL_S3", endpoint); err != nil {
			t.Fatal(err)
		}
	}
	return endpoint
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./:+=-]+$`)

// S3EnvFile returns a file of `export K=V` lines, as deploy/s3/s3.sh writes them, for the shared S3 server: its
// endpoint (MINIPIPE_S3_ENDPOINT) and this process's AWS credentials and region. hms.sh and trino.sh take it
// (--s3-env) to reach s3a:// tables.
func S3EnvFile(t testing.TB) string {
	t.Helper()
	endpoint := S3(t)
	s3EnvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "minipipe-s3env-")
		if err != nil {
			s3EnvErr = err
			return
		}
		sharedStopsMu.Lock()
		sharedStops = append(sharedStops, func() { _ = os.RemoveAll(dir) })
		sharedStopsMu.Unlock()
		region := os.Getenv("AWS_REGION")
		if region == "" {
			region = "us-east-1"
		}
		var b strings.Builder
		for _, kv := range [][2]string{{"AWS_ACCESS_KEY_ID", os.Getenv("AWS_ACCESS_KEY_ID")}, {"AWS_SECRET_ACCESS_KEY", os.Getenv("AWS_SECRET_ACCESS_KEY")},
			{"AWS_REGION", region}, {"MINIPIPE_S3_ENDPOINT", endpoint}} {
			if !plainWord.MatchString(kv[1]) { // the file is sourced by a shell
				s3EnvErr = fmt.Errorf("the test S3 server's %s is empty or not a plain word (the AWS_* variables of deploy/s3/s3.sh's env file are)", kv[0])
				return
			}
			fmt.Fprintf(&b, "export %s=%s\n", kv[0], kv[1])
		}
		s3EnvPath = filepath.Join(dir, "env")
		s3EnvErr = os.WriteFile(s3EnvPath, []byte(b.String()), 0o600)
	})
	if s3EnvErr != nil {
		t.Fatalf("the S3 env file: %v", s3EnvErr)
	}
	return s3EnvPath
}

// exportEnvFile sets the variables of `export K=V` lines.
func exportEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export "); ok {
			if k, v, ok := strings.Cut(kv, "="); ok {
				if err := os.Setenv(k, v); err != nil {
					return err
				}
			}
		}
	}
	return sc.Err()
}

type startError struct {
	what string
	err  error
	out  []byte
}

func (e *startError) Error() string { return e.what + ": " + e.err.Error() + "\n" + string(e.out) }
