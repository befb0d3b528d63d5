package topology

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/minipipe/minipipe/internal/auth"
	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/query"
	"github.com/minipipe/minipipe/internal/supervise"
	"github.com/minipipe/minipipe/internal/tlsconf"
	"github.com/minipipe/minipipe/processors/console"
	"github.com/minipipe/minipipe/processors/edge"
	"github.com/minipipe/minipipe/processors/registry"
	"github.com/minipipe/minipipe/sinks/fs"
	"github.com/minipipe/minipipe/state"
)

// App is a running minipipe: the REST Proxy and Schema Registry APIs, health and metrics, and (from the
// topology) the pipeline that turns topics into tables.
type App struct {
	cfg     Config
	log     *slog.Logger
	metrics *prometheus.Registry

	embedded *kafka.Embedded
	lock     *os.File
	ksec     kafka.Security // read once: the TLS files and the SASL password

	kafkaOK  atomic.Bool
	draining atomic.Bool // told to stop, serving out --shutdown-delay
	reg      atomic.Pointer[registry.Registry]
	pipe     atomic.Pointer[Pipeline]
	console  atomic.Pointer[console.Console]
	monitor  *supervise.Monitor
}

// NewApp checks the configuration and takes the data directory.
func NewApp(cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ksec, err := cfg.KafkaSecurity()
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), ksec: ksec}
	avro.MaxRecordItems = cfg.MaxRecordItems
	a.monitor = supervise.NewMonitor(a.metrics)
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.lock = lock
	return a, nil
}

// lockDir takes an exclusive lock on the data directory so that two instances never share local state.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another minipipe (give each instance its own --data-dir)", dir)
	}
	return f, nil
}

func (a *App) kafkaConfig() kafka.Config {
	return kafka.Config{Brokers: a.cfg.Brokers, ClientID: "minipipe", ReplicationFactor: a.cfg.ReplicationFactor,
		Compression: a.cfg.Compression, DeliveryTimeout: a.cfg.DeliveryTimeout, Logger: a.log, Security: a.ksec}
}

// Run serves until ctx ends, then shuts down in order.
func (a *App) Run(ctx context.Context) error {
	defer a.lock.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if a.cfg.EmbeddedKafka {
		e, err := kafka.StartEmbedded(a.cfg.Brokers[0], a.cfg.TopicPartitions)
		if err != nil {
			return err
		}
		a.embedded = e
		defer e.Close()
		a.log.Warn("EMBEDDED KAFKA: an in-process, in-memory broker for trying minipipe out. Every topic, schema and offset is lost when minipipe stops. Use a real broker (make kafka-up) for anything that matters.",
			"brokers", e.Brokers())
		a.cfg.Brokers = e.Brokers()
	}

	authn, serverTLS, err := a.security(ctx)
	if err != nil {
		return err
	}
	// Health and metrics answer from the start, also while Kafka is not reachable yet.
	httpLn, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	var wg sync.WaitGroup
	servers := []*http.Server{}
	serve := func(name string, ln net.Listener, rule auth.Rule, h http.Handler) {
		// Every listener is bounded: a client slow to send (slowloris) or to read, idle connections, and
		// the number of connections.
		ln = netutil.LimitListener(ln, a.cfg.HTTPMaxConns)
		srv := &http.Server{Handler: auth.Protect(authn, rule, h), ReadHeaderTimeout: min(10*time.Second, a.cfg.HTTPReadTimeout), ReadTimeout: a.cfg.HTTPReadTimeout,
			WriteTimeout: a.cfg.HTTPWriteTimeout, IdleTimeout: a.cfg.HTTPIdleTimeout, MaxHeaderBytes: 64 << 10, TLSConfig: serverTLS,
			ErrorLog: slog.NewLogLogger(a.log.With("api", name).Handler(), slog.LevelDebug)}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.log.Info("listening", "api", name, "addr", ln.Addr().String(), "https", serverTLS != nil, "auth", authn != nil)
			var err error
			if serverTLS != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("server failed", "api", name, "error", err)
				cancel()
			}
		}()
	}
	serve("http", httpLn, auth.OpsRule, a.httpHandler())
	shutdown := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		wg.Wait()
	}

	kcfg := a.kafkaConfig()
	if err := a.waitKafka(ctx, kcfg); err != nil {
		shutdown()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	go a.watchKafka(ctx, kcfg)

	admin, err := sarama.NewClusterAdmin(kcfg.Brokers, kcfg.Sarama())
	if err != nil {
		shutdown()
		return fmt.Errorf("kafka admin: %w", err)
	}
	replication, err := kafka.ResolveReplication(ctx, admin, a.cfg.ReplicationFactor)
	admin.Close()
	if err != nil {
		shutdown()
		return err
	}
	gk := kafka.NewGoka(kcfg, replication, state.Builder(filepath.Join(a.cfg.DataDir, "state"), state.Options{}))

	reg, err := registry.New(registry.Config{Topic: a.cfg.RegistryTopic, Group: a.cfg.RegistryTopic + "_owner", Timeout: a.cfg.RegistryTimeout, Monitor: a.monitor}, kcfg, gk, a.log)
	if err != nil {
		shutdown()
		return err
	}
	a.reg.Store(reg)
	// The registry outlives the pipeline at shutdown: committing the last files may need schemas.
	regCtx, regCancel := context.WithCancel(context.Background())
	defer regCancel()
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Run(regCtx) }()

	rest, err := edge.New(edge.Config{
		AutoCreateTopics:  a.cfg.AutoCreateTopics,
		TopicPartitions:   a.cfg.TopicPartitions,
		ReplicationFactor: replication,
		MaxRequestBytes:   a.cfg.MaxRequestBytes,
		ProduceTimeout:    a.cfg.ProduceTimeout,
		MaxInflightBytes:  a.cfg.MaxInflightBytes,
		Internal:          edge.IsInternalTopic,
	}, kcfg, reg, edge.NewMetrics(a.metrics), a.log)
	if err != nil {
		regCancel()
		<-regDone
		shutdown()
		return err
	}
	regLn, err := net.Listen("tcp", a.cfg.RegistryAddr)
	if err != nil {
		regCancel()
		<-regDone
		shutdown()
		return fmt.Errorf("--registry-addr: %w", err)
	}
	restLn, err := net.Listen("tcp", a.cfg.RestAddr)
	if err != nil {
		regLn.Close()
		regCancel()
		<-regDone
		shutdown()
		return fmt.Errorf("--rest-addr: %w", err)
	}
	serve("registry", regLn, auth.RegistryRule, reg.Handler())
	serve("rest", restLn, auth.RESTRule, rest.Handler())

	wh, err := fs.Open(a.cfg.WarehouseURL())
	if err != nil {
		regCancel()
		<-regDone
		shutdown()
		return err
	}
	defer wh.Close()
	pipe, err := NewPipeline(a.cfg, a.log, kcfg, gk, reg, wh, a.metrics, a.monitor)
	if err != nil {
		regCancel()
		<-regDone
		shutdown()
		return err
	}
	a.pipe.Store(pipe)
	pipeCtx, pipeCancel := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx) }()

	go a.runConsole(pipeCtx, kcfg, gk, wh, reg)
	a.log.Info("pipeline running", "warehouse", a.cfg.WarehouseURL())

	var runErr error
	select {
	case <-ctx.Done():
		if d := a.cfg.ShutdownDelay; d > 0 {
			// Told to stop: report not ready and keep serving while load balancers and Kubernetes' endpoints
			// stop sending new requests here, then stop.
			a.draining.Store(true)
			a.log.Info("stopping: not ready any more, serving until the shutdown delay has passed", "delay", d)
			time.Sleep(d)
		}
	case runErr = <-regDone:
		regDone <- runErr
	case runErr = <-pipeDone:
		pipeDone <- runErr
	}
	a.log.Info("shutting down")
	shutdown()
	if err := rest.Close(); err != nil {
		a.log.Warn("closing the REST producer", "error", err)
	}
	// The pipeline stops before the registry: committing its open files needs schemas.
	pipeCancel()
	if err := <-pipeDone; err != nil && runErr == nil {
		runErr = err
	}
	regCancel()
	if err := <-regDone; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// runConsole runs the web console until ctx ends. The console is for people: the pipeline runs without it,
// and it is started again (with backoff) when it cannot start or stops on an error.
func (a *App) runConsole(ctx context.Context, kcfg kafka.Config, gk *kafka.Goka, wh fs.FS, reg *registry.Registry) {
	backoff := time.Second
	deps := consoleDeps(a.cfg, kcfg, wh, reg, a.pipe.Load, a.monitor, a.log.With("component", "console"))
	deps.Metrics = a.metrics
	for ctx.Err() == nil {
		con, err := console.New(console.Config{Topic: a.cfg.ConsoleTopic, Trino: a.cfg.Trino, Catalog: a.cfg.TrinoCatalog, Schema: a.cfg.HiveDatabase,
			Limits: query.Limits{Timeout: a.cfg.ConsoleTimeout, MaxRows: a.cfg.ConsoleMaxRows}, AnyHost: a.cfg.InsecureNoAuth}, deps, kcfg, gk, a.log)
		if err == nil {
			a.console.Store(con)
			a.log.Info("console up", "url", "http://"+a.cfg.HTTPAddr+"/console/")
			err = con.Run(ctx)
			a.console.CompareAndSwap(con, nil)
			backoff = time.Second
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Error("the console is not running; starting it again", "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// security reads the users file and the server certificate, and keeps them current: the users file is
// re-read when it changes, both on SIGHUP. Listeners reachable from other machines are named in the log at
// every start when they serve without authentication or without TLS.
func (a *App) security(ctx context.Context) (*auth.Authenticator, *tls.Config, error) {
	var authn *auth.Authenticator
	if a.cfg.AuthFile != "" {
		var err error
		if authn, err = auth.Open(a.cfg.AuthFile, auth.WithLogger(a.log.With("component", "auth"))); err != nil {
			return nil, nil, fmt.Errorf("--auth-file: %w", err)
		}
		if authn.Users() == 0 {
			a.log.Warn("the users file has no users: every request but /healthz and /readyz is refused", "file", a.cfg.AuthFile)
		}
		go authn.Watch(ctx, time.Second)
	}
	var certs *tlsconf.Reloader
	var serverTLS *tls.Config
	if a.cfg.TLSCert != "" {
		var err error
		if certs, err = tlsconf.NewReloader(a.cfg.TLSCert, a.cfg.TLSKey); err != nil {
			return nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		serverTLS = certs.ServerConfig()
	}
	if a.ksec.Mechanism == kafka.SASLPlain && a.ksec.TLS == nil {
		a.log.Warn("SASL PLAIN without TLS sends the Kafka password in clear: give --kafka-tls or --kafka-tls-ca")
	}
	if exposed := a.cfg.exposed(); len(exposed) > 0 {
		switch {
		case authn == nil:
			a.log.Warn("INSECURE: listeners reachable from other machines serve without authentication (--insecure-no-auth): anyone who reaches them can produce, register and delete schemas",
				"listeners", exposed)
		case serverTLS == nil:
			a.log.Warn("listeners reachable from other machines take passwords over plain HTTP: give --tls-cert and --tls-key", "listeners", exposed)
		}
	}
	if certs != nil {
		go certs.Watch(ctx, 10*time.Second, func(err error) {
			if err != nil {
				a.log.Error("the TLS certificate files changed but do not load; the certificate in use stays", "error", err)
				return
			}
			a.log.Info("TLS certificate files changed: reloaded", "subject", certs.Leaf().Subject.String(), "not_after", certs.Leaf().NotAfter)
		})
	}
	if authn != nil || certs != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			defer signal.Stop(hup)
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
				}
				if certs != nil {
					if err := certs.Reload(); err != nil {
						a.log.Error("SIGHUP: the TLS certificate was not reloaded; the one in use stays", "error", err)
					} else {
						a.log.Info("SIGHUP: TLS certificate reloaded", "subject", certs.Leaf().Subject.String(), "not_after", certs.Leaf().NotAfter)
					}
				}
				if authn != nil {
					if _, err := authn.Reload(); err != nil {
						a.log.Error("SIGHUP: the users file was not reloaded; the users stay as they were", "error", err)
					} else {
						a.log.Info("SIGHUP: users file reloaded", "users", authn.Users())
					}
				}
			}
		}()
	}
	return authn, serverTLS, nil
}

// waitKafka waits until the cluster answers, logging while it does not.
func (a *App) waitKafka(ctx context.Context, kcfg kafka.Config) error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := ping(kcfg)
		if err == nil {
			a.kafkaOK.Store(true)
			a.log.Info("connected to Kafka", "brokers", kcfg.Brokers, "security", kcfg.Security.String())
			return nil
		}
		// Wrong credentials or TLS settings do not get better by waiting: say so and stop.
		if ferr := kafka.Fatal(err); ferr != nil {
			return fmt.Errorf("connecting to Kafka at %s (%s): %w", strings.Join(kcfg.Brokers, ","), kcfg.Security.String(), ferr)
		}
		if attempt == 1 || attempt%10 == 0 {
			a.log.Warn("waiting for Kafka", "brokers", kcfg.Brokers, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func ping(kcfg kafka.Config) error {
	cfg := kcfg.Sarama()
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	admin, err := sarama.NewClusterAdmin(kcfg.Brokers, cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, _, err = admin.DescribeCluster()
	return err
}

// watchKafka keeps the readiness flag current, with one long-lived client.
func (a *App) watchKafka(ctx context.Context, kcfg kafka.Config) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	cfg := kcfg.Sarama()
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	var client sarama.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var err error
			if client == nil {
				client, err = sarama.NewClient(kcfg.Brokers, cfg)
			}
			if err == nil {
				err = client.RefreshMetadata()
			}
			if err != nil && client != nil {
				client.Close()
				client = nil
			}
			if was := a.kafkaOK.Swap(err == nil); was && err != nil {
				a.log.Warn("Kafka is unreachable", "error", err)
			} else if !was && err == nil {
				a.log.Info("Kafka is reachable again")
			}
		}
	}
}

// Ready reports whether Kafka is reachable and the registry has loaded its state.
func (a *App) Ready() (bool, string) {
	if a.draining.Load() {
		return false, "shutting down"
	}
	if !a.kafkaOK.Load() {
		return false, "kafka unreachable"
	}
	reg := a.reg.Load()
	if reg == nil || !reg.Ready() {
		return false, "schema registry loading"
	}
	if why := a.monitor.Summary(); why != "" {
		return false, why
	}
	return true, "ok"
}

func (a *App) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, why := a.Ready()
		w.Header().Set("Content-Type", "text/plain")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	// The goka graphs running in this instance, read from the graphs given to goka: `minipipe topology
	// --format json` declares them.
	mux.HandleFunc("GET /topology", func(w http.ResponseWriter, r *http.Request) {
		running := []Running{}
		if p := a.pipe.Load(); p != nil {
			running = p.Running()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(running)
	})
	// The console: its pages and their API (processors/console), once Kafka and the registry are up.
	con := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := a.console.Load()
		if c == nil {
			w.Header().Set("Retry-After", "2")
			w.Header().Set("Cache-Control", "no-store")
			if strings.HasPrefix(r.URL.Path, "/console/api/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error_code":50301,"message":"the console is starting (waiting for Kafka and the schema registry)"}` + "\n"))
				return
			}
			// A page asked for: it loads itself again in a moment.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<!doctype html><meta http-equiv="refresh" content="2"><title>minipipe</title><p>The console is starting (waiting for Kafka and the schema registry)…</p>` + "\n"))
			return
		}
		c.Handler().ServeHTTP(w, r)
	})
	mux.Handle("/console", con)
	mux.Handle("/console/", con)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/console/", http.StatusFound) })
	if a.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
