package testkit

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var sharedS3 shared

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
