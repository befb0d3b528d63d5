// Package testkit gives tests the services minipipe runs on: in-process fakes for fast unit tests
// (franz-go's kfake) and launchers for the real ones, started by the project's own scripts from Maven
// Central jars and stopped when the test (or the test binary) ends.
package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/minipipe/minipipe/internal/kafka"
)

// Root returns the repository root (the directory holding go.mod).
func Root() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("testkit: no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed
// out before. It is drawn at random below Linux's ephemeral range (32768–60999), so neither the kernel's next
// bind to port 0 nor an outgoing connection takes it before the caller listens on it.
func FreePort(t testing.TB) int {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 1000; i++ {
		p := 15000 + rand.IntN(17000)
		if portsUsed[p] || portsUsed[p-1] {
			continue // p-1 may be a Kafka broker whose controller listens on p
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatalf("free port: none found")
	return 0
}

// Broker is a real single-node Apache Kafka broker run by deploy/kafka/kafka.sh.
type Broker struct {
	Dir  string
	Port int
	// SASLPort, when set, adds a SASL_SSL listener there (kafka.sh --sasl-ssl-port).
	SASLPort int
}

// Addr is the broker's bootstrap address.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.Port) }

// Brokers is the bootstrap list.
func (b *Broker) Brokers() []string { return []string{b.Addr()} }

func (b *Broker) script(ctx context.Context, args ...string) error {
	args = append(args, "--dir", b.Dir, "--port", strconv.Itoa(b.Port), "--controller-port", strconv.Itoa(b.Port+1))
	if b.SASLPort != 0 && args[0] == "start" {
		args = append(args, "--sasl-ssl-port", strconv.Itoa(b.SASLPort))
	}
	cmd := exec.CommandContext(ctx, filepath.Join(Root(), "deploy", "kafka", "kafka.sh"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// Start starts (or restarts) the broker and waits until it answers metadata requests.
func (b *Broker) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := b.script(ctx, "start"); err != nil {
		return err
	}
	return WaitKafka(b.Brokers(), 90*time.Second)
}

// Stop shuts the broker down cleanly; its data stays for a restart.
func (b *Broker) Stop() error { return b.script(context.Background(), "stop") }

// Kill kills the broker with SIGKILL.
func (b *Broker) Kill() error { return b.script(context.Background(), "kill") }

// WaitKafka waits until a broker answers metadata requests and has a controller.
func WaitKafka(brokers []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		cfg := (kafka.Config{ClientID: "minipipe-testkit"}).Sarama()
		admin, err := sarama.NewClusterAdmin(brokers, cfg)
		if err == nil {
			_, _, err = admin.DescribeCluster()
			admin.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("kafka at %v not ready after %v: %v", brokers, timeout, last)
}

// StartKafka starts a dedicated real broker for one test and stops it when the test ends; use it for
// tests that restart or kill the broker.
func StartKafka(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{Dir: t.TempDir(), Port: freePortPair(t)}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Kill() })
	return b
}

// SecureBroker is a dedicated broker with a SASL_SSL listener beside its plaintext one: minipipe under test
// reaches it over TLS with SASL, the test's own tools (topic creation, load generators, offset checks) over
// plaintext.
type SecureBroker struct {
	*Broker
	CA           string // PEM of the CA that signed the broker's certificate
	User         string
	PasswordFile string
}

// Secure is the bootstrap list of the SASL_SSL listener.
func (b *SecureBroker) Secure() []string { return []string{"127.0.0.1:" + strconv.Itoa(b.SASLPort)} }

// StartSecureKafka starts a dedicated broker with a SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256 and
// PLAIN, user "minipipe") for one test.
func StartSecureKafka(t testing.TB) *SecureBroker {
	t.Helper()
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping a test that needs a real Kafka broker")
	}
	b := &Broker{Dir: t.TempDir(), Port: freePortPair(t), SASLPort: FreePort(t)}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Kill() })
	return &SecureBroker{Broker: b, CA: filepath.Join(b.Dir, "tls", "ca.pem"), User: "minipipe", PasswordFile: filepath.Join(b.Dir, "sasl.password")}
}

// freePortPair finds a port p with p+1 also free (broker and controller listeners).
func freePortPair(t testing.TB) int {
	for i := 0; i < 50; i++ {
		p := FreePort(t)
		portMu.Lock()
		taken := portsUsed[p+1]
		portMu.Unlock()
		if taken {
			continue
		}
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			l.Close()
			portMu.Lock()
			portsUsed[p+1] = true
			portMu.Unlock()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

var (
	sharedOnce   sync.Once
	sharedBroker *Broker
	sharedErr    error
	sharedOwned  bool
)

// Kafka returns the bootstrap addresses of a real broker shared by the tests of this binary: the one named
// by MINIPIPE_TEST_KAFKA (make test starts one), or else one started here and stopped by Main. Tests keep
// out of each other's way with unique topic names (see Topic).
func Kafka(t testing.TB) []string {
	t.Helper()
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping a test that needs a real Kafka broker")
	}
	if env := os.Getenv("MINIPIPE_TEST_KAFKA"); env != "" {
		return strings.Split(env, ",")
	}
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "minipipe-kafka-")
		if err != nil {
			sharedErr = err
			return
		}
		b := &Broker{Dir: dir, Port: freePortPair(t)}
		sharedErr = b.Start()
		sharedBroker, sharedOwned = b, true
	})
	if sharedErr != nil {
		t.Fatalf("starting a real Kafka broker: %v", sharedErr)
	}
	return sharedBroker.Brokers()
}

// Main runs a test binary's tests and then stops the shared services it started. Call it from TestMain.
func Main(m interface{ Run() int }) {
	code := m.Run()
	stopShared()
	if sharedOwned && sharedBroker != nil {
		_ = sharedBroker.Kill()
		_ = os.RemoveAll(sharedBroker.Dir)
	}
	os.Exit(code)
}

// Topic returns a topic name unique to this test run, starting with the test's TopicPrefix.
func Topic(t testing.TB, base string) string {
	return fmt.Sprintf("%s%s-%d", TopicPrefix(t), base, time.Now().UnixNano()%1_000_000_000)
}

var (
	prefixMu sync.Mutex
	prefixes = map[testing.TB]string{}
)

// TopicPrefix is a prefix unique to the test (and its subtests' parent), so that a pipeline started by
// the test picks up only its own topics on a shared broker.
func TopicPrefix(t testing.TB) string {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	if p, ok := prefixes[t]; ok {
		return p
	}
	p := fmt.Sprintf("t%d-", time.Now().UnixNano()%1_000_000_000)
	prefixes[t] = p
	return p
}

// Embedded starts an in-process kfake broker for a test.
func Embedded(t testing.TB) []string {
	t.Helper()
	e, err := kafka.StartEmbedded("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Brokers()
}

// Consume reads n records of a topic (every partition, from the start), failing the test after timeout.
func Consume(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := (kafka.Config{ClientID: "minipipe-testkit"}).Sarama()
	c, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	out := make(chan *sarama.ConsumerMessage, 1024)
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		// A topic just made may not have its leaders known yet: "not the leader" is retriable (the consumer
		// refreshes its metadata before the next try).
		for wait := time.Now().Add(timeout); err != nil && (errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable)); {
			if time.Now().After(wait) {
				break
			}
			time.Sleep(200 * time.Millisecond)
			pc, err = c.ConsumePartition(topic, p, sarama.OffsetOldest)
		}
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				out <- m
			}
		}(pc)
	}
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	var msgs []*sarama.ConsumerMessage
	deadline := time.After(timeout)
	for len(msgs) < n {
		select {
		case m := <-out:
			msgs = append(msgs, m)
		case <-deadline:
			t.Fatalf("consumed %d of %d records from %s in %v", len(msgs), n, topic, timeout)
		}
	}
	return msgs
}

// EndOffsets returns the sum of the high-water marks of a topic's partitions (0 for a missing topic).
func EndOffsets(t testing.TB, brokers []string, topic string) int64 {
	t.Helper()
	cfg := (kafka.Config{ClientID: "minipipe-testkit"}).Sarama()
	c, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0
	}
	var sum int64
	for _, p := range parts {
		// A partition created a moment ago may not have its leader in every broker's metadata yet: a
		// retriable error (not the leader, leader not available) is retried with fresh metadata.
		deadline := time.Now().Add(15 * time.Second)
		for {
			o, err := c.GetOffset(topic, p, sarama.OffsetNewest)
			if err == nil {
				sum += o
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("end offset of %s/%d: %v", topic, p, err)
			}
			time.Sleep(100 * time.Millisecond)
			_ = c.RefreshMetadata(topic)
		}
	}
	return sum
}

// venv is a virtualenv deploy/python.sh makes once from a requirements file (empty: testkit/python's).
type venv struct {
	once sync.Once
	path string
	err  error
}

func (v *venv) python(t testing.TB, requirements string) string {
	t.Helper()
	v.once.Do(func() {
		var args []string
		if requirements != "" {
			args = append(args, filepath.Join(Root(), "testkit", "python", requirements))
		}
		cmd := exec.Command(filepath.Join(Root(), "deploy", "python.sh"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			v.err = fmt.Errorf("deploy/python.sh: %v\n%s", err, stderr.String())
			return
		}
		v.path = strings.TrimSpace(string(out))
	})
	if v.err != nil {
		t.Fatal(v.err)
	}
	return v.path
}

var confluentVenv, icebergVenv venv

// Python returns the python of a virtualenv holding Confluent's Python client (testkit/python), made once
// by deploy/python.sh from PyPI and cached.
func Python(t testing.TB) string { t.Helper(); return confluentVenv.python(t, "") }

// PyIceberg returns the python of a virtualenv holding pyiceberg (testkit/python/iceberg-requirements.txt),
// made once by deploy/python.sh from PyPI and cached.
func PyIceberg(t testing.TB) string {
	t.Helper()
	return icebergVenv.python(t, "iceberg-requirements.txt")
}

// CreateTopic creates a topic with the given partition count (replication 1).
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, (kafka.Config{ClientID: "minipipe-testkit"}).Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}
