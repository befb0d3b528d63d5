package topology_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// s3Config is crashConfig on a warehouse of its own in the test S3 server's bucket.
func s3Config(t *testing.T, brokers []string) topology.Config {
	cfg := crashConfig(t, brokers)
	cfg.S3Endpoint = testkit.S3(t)
	cfg.Warehouse = "s3://" + testkit.S3Bucket + "/" + testkit.Topic(t, "wh")
	return cfg
}

// TestS3CrashAtEveryCommitStep: the crash suite on an s3:// warehouse (moto's server). Staged files are
// multipart uploads, manifest records conditional puts, publishing a part copy completed with If-None-Match;
// minipipe is SIGKILLed at each step of the commit protocol (and in the recovery after), restarted, and every
// row is counted through `minipipe query`'s mirror of the table: no loss, no duplicate, no staging file left.
func TestS3CrashAtEveryCommitStep(t *testing.T) {
	crashAtEveryStep(t, testkit.Kafka(t), s3Config, "s3crash", true)
}

// TestS3Query: `minipipe query` on an s3:// warehouse, the binary as a user runs it.
func TestS3Query(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := s3Config(t, brokers)
	topic := testkit.Topic(t, "s3query")
	gen := primedTopic(t, brokers, cfg, topic)
	testkit.StartProcess(t, cfg)
	settle(t, brokers, cfg, topic, int(gen.produced.Load()), 2*time.Minute)
	cmd := exec.Command(testkit.Binary(t), "query", "--warehouse", cfg.WarehouseURL(), "--s3-endpoint", cfg.S3Endpoint,
		"--data-dir", t.TempDir(), "--format", "csv", "SELECT count(*), count(DISTINCT id) FROM "+tableOf(topic))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1500,1500") {
		t.Fatalf("minipipe query on S3: %v\n%s", err, out)
	}
	t.Logf("minipipe query on %s: %s", cfg.WarehouseURL(), strings.TrimSpace(string(out)))
}

// TestS3CrashUnderLoad kills minipipe at random moments while records keep arriving, on an s3:// warehouse.
func TestS3CrashUnderLoad(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := s3Config(t, brokers)
	cfg.FlushSize = 2000
	topic := testkit.Topic(t, "s3load")
	produced := crashUnderLoad(t, brokers, cfg, topic, 5)
	settle(t, brokers, cfg, topic, produced, 3*time.Minute)
}

// TestS3ManyInstances: issue 5's many-instance test on an s3:// warehouse: three instances sharing the work
// while records arrive, one frozen past two checkpoints of every commit partition (when it wakes, whatever it
// still tries to publish finds its uploads aborted and its records refused), one killed, a fourth joining, one
// stopped by SIGTERM; then every row once, and every data file of the table in a manifest.
func TestS3ManyInstances(t *testing.T) {
	brokers := testkit.Kafka(t)
	base := testkit.TestConfig(t, brokers)
	base.S3Endpoint = testkit.S3(t)
	base.Warehouse = "s3://" + testkit.S3Bucket + "/" + testkit.Topic(t, "wh")
	// Files of 4 s, not 1 s: every file costs some fifteen requests of moto's single Python process, which
	// would otherwise take minutes to catch up after the load (seen: 4 min at 1 s).
	base.RotateInterval = 4 * time.Second
	cfg, topic, produced := manyInstances(t, base, brokers, withFlags)
	settle(t, brokers, cfg, topic, produced, 3*time.Minute)
	filesMatchManifest(t, mustFS(t, cfg.WarehouseURL()), tableOf(topic))
}
