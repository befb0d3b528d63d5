package topology_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/tlsconf"
	"github.com/minipipe/minipipe/processors/registry"
	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// secureClient speaks HTTPS trusting the test CA.
type secureClient struct {
	t  *testing.T
	cl *http.Client
}

func newSecureClient(t *testing.T, ca string) *secureClient {
	cfg, err := tlsconf.ClientConfig(ca, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return &secureClient{t: t, cl: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg}}}
}

type reply struct {
	status int
	header http.Header
	body   string
	serial string
}

func (c *secureClient) do(method, url, user, password, body string, headers ...string) reply {
	c.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.cl.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.serial = resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	return r
}

func (r reply) code() int {
	var e struct {
		Code int `json:"error_code"`
	}
	_ = json.Unmarshal([]byte(r.body), &e)
	return e.Code
}

// addUser runs `minipipe user add` with the password on standard input.
func addUser(t *testing.T, file, name, password, roles string) {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t), "user", "add", name, "--roles", roles, "--auth-file", file)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minipipe user add %s: %v\n%s", name, err, out)
	}
}

// TestHTTPSecurity: every API over HTTPS with users from a users file. Without credentials 401/40101 with
// WWW-Authenticate; a reader producing 403/40301; a producer deleting a subject 403; Confluent's Python
// client with basic.auth.user.info and ssl.ca.location registers a schema and produces; the registry change
// is attributed to its user in `minipipe audit`; a user removed from the file is refused within seconds; a
// renewed certificate is served after SIGHUP; no password or hash reaches the log.
func TestHTTPSecurity(t *testing.T) {
	python := testkit.Python(t)
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	certDir := t.TempDir()
	certs := testkit.NewCerts(t, certDir)
	users := filepath.Join(t.TempDir(), "users")
	secrets := map[string]string{"alice": "alice-Secret-71", "bob": "bob-Secret-72", "carol": "carol-Secret-73"}
	addUser(t, users, "alice", secrets["alice"], "reader,producer,registry-writer")
	addUser(t, users, "bob", secrets["bob"], "reader")
	addUser(t, users, "carol", secrets["carol"], "producer")
	if st, err := os.Stat(users); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode: %v %v", st.Mode(), err)
	}
	cfg.AuthFile, cfg.TLSCert, cfg.TLSKey = users, certs.Cert, certs.Key
	p := testkit.StartProcess(t, cfg)
	c := newSecureClient(t, certs.CA)

	// curl, as the seed's users run it: without credentials 401 and Confluent's body; with them, the answer.
	out, err := exec.Command("curl", "-s", "--cacert", certs.CA, "-w", "\n%{http_code}", p.Registry+"/subjects").Output()
	if err != nil || !strings.HasSuffix(string(out), "\n401") || !strings.Contains(string(out), `"error_code":40101`) {
		t.Fatalf("curl without credentials: %v %s", err, out)
	}
	out, err = exec.Command("curl", "-s", "--cacert", certs.CA, "-u", "bob:"+secrets["bob"], "-w", "\n%{http_code}", p.Registry+"/subjects").Output()
	if err != nil || !strings.HasSuffix(string(out), "\n200") {
		t.Fatalf("curl -u bob: %v %s", err, out)
	}

	// Probes stay open; everything else needs credentials.
	if r := c.do("GET", p.HTTP+"/healthz", "", "", ""); r.status != 200 {
		t.Fatalf("/healthz: %d %s", r.status, r.body)
	}
	for _, url := range []string{p.Registry + "/subjects", p.REST + "/topics", p.HTTP + "/metrics"} {
		r := c.do("GET", url, "", "", "")
		if r.status != 401 || r.code() != 40101 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("GET %s without credentials: %d %v %s", url, r.status, r.header, r.body)
		}
		if r := c.do("GET", url, "bob", "wrong password", ""); r.status != 401 || r.code() != 40101 {
			t.Fatalf("GET %s with a wrong password: %d %s", url, r.status, r.body)
		}
		if r := c.do("GET", url, "bob", secrets["bob"], ""); r.status != 200 {
			t.Fatalf("GET %s as a reader: %d %s", url, r.status, r.body)
		}
	}

	topic := testkit.Topic(t, "secure")
	schema := `{"type":"record","name":"Login","fields":[{"name":"user","type":"string"},{"name":"n","type":"long"}]}`
	produce := testkit.MustJSON(map[string]any{"value_schema": schema, "records": []any{map[string]any{"value": map[string]any{"user": "x", "n": 1}}}})
	ct := []string{"Content-Type", "application/vnd.kafka.avro.v2+json"}
	if r := c.do("POST", p.REST+"/topics/"+topic, "bob", secrets["bob"], produce, ct...); r.status != 403 || r.code() != 40301 {
		t.Fatalf("a reader producing: %d %s", r.status, r.body)
	}
	if r := c.do("POST", p.REST+"/topics/"+topic, "carol", secrets["carol"], produce, ct...); r.status != 200 {
		t.Fatalf("a producer producing: %d %s", r.status, r.body)
	}
	if r := c.do("DELETE", p.Registry+"/subjects/"+topic+"-value", "carol", secrets["carol"], ""); r.status != 403 || r.code() != 40301 {
		t.Fatalf("a producer deleting a subject: %d %s", r.status, r.body)
	}

	// Confluent's Python client, configured as its users configure it.
	pyTopic := testkit.Topic(t, "secure-py")
	testkit.CreateTopic(t, brokers, pyTopic, 2)
	pySchema := `{"type":"record","name":"Pay","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"}]}`
	recFile := filepath.Join(t.TempDir(), "records.json")
	if err := os.WriteFile(recFile, []byte(`[{"id":1,"amount":2.5},{"id":2,"amount":3.5}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(testkit.Root(), "testkit", "python", "confluent_client.py")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(python, append([]string{script}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out) + stderr.String(), err
		}
		return string(out), nil
	}
	common := []string{"--bootstrap", strings.Join(brokers, ","), "--registry", p.Registry, "--topic", pyTopic, "--ca-file", certs.CA}
	if out, err := run(append([]string{"produce", "--schema", pySchema, "--records", recFile, "--basic-auth", "bob:" + secrets["bob"]}, common...)...); err == nil {
		t.Fatalf("a reader registered a schema through the Python client:\n%s", out)
	}
	py, err := run(append([]string{"produce", "--schema", pySchema, "--records", recFile, "--basic-auth", "alice:" + secrets["alice"]}, common...)...)
	if err != nil || !strings.Contains(py, `"produced": 2`) {
		t.Fatalf("the Python client as alice: %v\n%s", err, py)
	}
	py, err = run(append([]string{"consume", "--count", "2", "--basic-auth", "bob:" + secrets["bob"]}, common...)...)
	if err != nil || strings.Count(py, `"amount"`) != 2 {
		t.Fatalf("the Python client reading as bob: %v\n%s", err, py)
	}

	// Who changed the registry: alice registered the Python client's schema, carol the REST one's.
	auditOut, err := exec.Command(testkit.Binary(t), "audit", "--brokers", strings.Join(brokers, ","), "--registry-topic", cfg.RegistryTopic, "--json").Output()
	if err != nil {
		t.Fatalf("minipipe audit: %v", err)
	}
	var trail []registry.AuditRecord
	if err := json.Unmarshal(auditOut, &trail); err != nil {
		t.Fatalf("minipipe audit --json: %v\n%s", err, auditOut)
	}
	by := map[string]string{}
	for _, a := range trail {
		if a.Op == "register" {
			by[a.Subject] = a.Principal
		}
	}
	if by[pyTopic+"-value"] != "alice" || by[topic+"-value"] != "carol" {
		t.Fatalf("audit trail %s", auditOut)
	}

	// The file is re-read when it changes: bob removed is refused within seconds.
	rm := exec.Command(testkit.Binary(t), "user", "remove", "bob", "--auth-file", users)
	if out, err := rm.CombinedOutput(); err != nil {
		t.Fatalf("minipipe user remove: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.do("GET", p.Registry+"/subjects", "bob", secrets["bob"], "").status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a removed user is still admitted after 10s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A renewed certificate after SIGHUP, for new connections.
	first := c.do("GET", p.HTTP+"/healthz", "", "", "").serial
	renewed := testkit.NewCerts(t, certDir)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		fresh := newSecureClient(t, certs.CA)
		if s := fresh.do("GET", p.HTTP+"/healthz", "", "", "").serial; s == renewed.Serial.String() {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the certificate served is %s (first %s, renewed %s)", s, first, renewed.Serial)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := c.do("GET", p.REST+"/topics", "alice", secrets["alice"], ""); r.status != 200 {
		t.Fatalf("after the renewal: %d %s", r.status, r.body)
	}

	// No secret in the log, the metrics or the users' view of the file.
	metrics := c.do("GET", p.HTTP+"/metrics", "alice", secrets["alice"], "").body
	list, _ := exec.Command(testkit.Binary(t), "user", "list", "--auth-file", users).CombinedOutput()
	hashes, _ := os.ReadFile(users)
	for _, line := range strings.Split(string(hashes), "\n") {
		if f := strings.Split(line, ":"); len(f) == 3 {
			secrets["hash of "+f[0]] = f[1]
		}
	}
	for what, secret := range secrets {
		for where, text := range map[string]string{"log": p.Log(), "metrics": metrics, "user list": string(list), "audit": string(auditOut)} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the %s", where, what)
			}
		}
	}
}

// TestExposure: a listener reachable from other machines needs --auth-file (or --insecure-no-auth).
func TestExposure(t *testing.T) {
	brokers := testkit.Kafka(t)
	cfg := testkit.TestConfig(t, brokers)
	port := testkit.FreePort(t)
	cfg.RestAddr = "0.0.0.0:" + strconv.Itoa(port)
	out, err := exec.Command(testkit.Binary(t), testkit.Args(cfg)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--rest-addr 0.0.0.0:"+strconv.Itoa(port)+" is reachable from other machines") {
		t.Fatalf("started without --auth-file on 0.0.0.0: %v\n%s", err, out)
	}
	users := filepath.Join(t.TempDir(), "users")
	addUser(t, users, "ops", "ops-Secret-1", "admin")
	cfg.AuthFile = users
	p := testkit.StartProcess(t, cfg)
	if r := newSecureClient(t, "").do("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/topics", "ops", "ops-Secret-1", ""); r.status != 200 {
		t.Fatalf("with --auth-file: %d %s", r.status, r.body)
	}
	if !strings.Contains(p.Log(), "take passwords over plain HTTP") {
		t.Errorf("no warning about passwords over plain HTTP:\n%s", p.Log())
	}
	p.Kill()
	cfg.AuthFile, cfg.InsecureNoAuth = "", true
	cfg.DataDir, cfg.PipelineName = t.TempDir(), testkit.Topic(t, "mpinsecure")
	p = testkit.StartProcess(t, cfg)
	if !strings.Contains(p.Log(), "INSECURE") {
		t.Errorf("--insecure-no-auth started without saying so:\n%s", p.Log())
	}
}

// TestKafkaSASLSSL: minipipe reaches Kafka over TLS with SASL. The seed walkthrough and the smallest crash
// case pass with SCRAM-SHA-512; SCRAM-SHA-256 and PLAIN connect; a wrong password or an unknown CA stops
// minipipe at once with an error that says so, instead of a retry loop. The test's own tools use the
// broker's plaintext listener.
func TestKafkaSASLSSL(t *testing.T) {
	b := testkit.StartSecureKafka(t)
	admin := b.Brokers()
	secure := func(cfg topology.Config, mechanism string) topology.Config {
		cfg.Brokers = b.Secure()
		cfg.KafkaTLSCA = b.CA
		cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPasswordFile = mechanism, b.User, b.PasswordFile
		return cfg
	}
	t.Run("seed walkthrough, SCRAM-SHA-512", func(t *testing.T) {
		seedWalkthrough(t, admin, secure(testkit.TestConfig(t, admin), "SCRAM-SHA-512"))
	})
	t.Run("crash at commit.intent, SCRAM-SHA-512", func(t *testing.T) {
		cfg := secure(crashConfig(t, admin), "SCRAM-SHA-512")
		topic := testkit.Topic(t, "crash")
		gen := primedTopic(t, admin, cfg, topic)
		killAt(t, cfg, "commit.intent:3", nil)
		gen.produce(300)
		testkit.StartProcess(t, cfg)
		settle(t, admin, cfg, topic, int(gen.produced.Load()), 2*time.Minute)
	})
	for _, mech := range []string{"SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			cfg := secure(testkit.TestConfig(t, admin), mech)
			p := testkit.StartProcess(t, cfg)
			if !strings.Contains(p.Log(), "security=\"TLS, SASL "+mech+" as minipipe\"") {
				t.Fatalf("no connection with %s in the log:\n%s", mech, p.Log())
			}
			// The password is nowhere to be seen: not in the log, the metrics, or the topology and its flags.
			pw, err := os.ReadFile(b.PasswordFile)
			if err != nil {
				t.Fatal(err)
			}
			password := strings.TrimSpace(string(pw))
			metrics := testkit.Do(t, "GET", p.HTTP+"/metrics", "")
			top, _ := exec.Command(testkit.Binary(t), append([]string{"topology", "--format", "json"}, testkit.Args(cfg)[1:]...)...).CombinedOutput()
			help, _ := exec.Command(testkit.Binary(t), "run", "--help").CombinedOutput()
			for where, text := range map[string]string{"log": p.Log(), "metrics": string(metrics.Body), "topology": string(top), "help": string(help)} {
				if strings.Contains(text, password) {
					t.Errorf("the SASL password is in the %s", where)
				}
			}
		})
	}
	refused := func(t *testing.T, cfg topology.Config, want string) {
		t.Helper()
		start := time.Now()
		out, err := exec.Command(testkit.Binary(t), testkit.Args(cfg)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "the Kafka connection's credentials or TLS settings were refused") {
			t.Fatalf("want an exit saying %q: %v\n%s", want, err, out)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("took %v to give up", d)
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		cfg := secure(testkit.TestConfig(t, admin), "SCRAM-SHA-512")
		cfg.KafkaSASLPasswordFile = filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(cfg.KafkaSASLPasswordFile, []byte("not-the-password\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, cfg, "SASL Authentication failed")
	})
	t.Run("unknown CA", func(t *testing.T) {
		cfg := secure(testkit.TestConfig(t, admin), "SCRAM-SHA-512")
		cfg.KafkaTLSCA = testkit.NewCerts(t, "").CA
		refused(t, cfg, "certificate signed by unknown authority")
	})
}
