package registry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/registry"
	"github.com/minipipe/minipipe/state"
	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestSmoke(t *testing.T) {
	brokers := testkit.Kafka(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.Default()
	}
	kc := kafka.Config{Brokers: brokers, Logger: log}
	gk := kafka.NewGoka(kc, 1, state.Builder(t.TempDir(), state.Options{}))
	topic := testkit.Topic(t, "_schemas_smoke")
	reg, err := registry.New(registry.Config{Topic: topic, Group: topic + "-g"}, kc, gk, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- reg.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	start := time.Now()
	resp, err := http.Post(srv.URL+"/subjects/t-value/versions", registry.ContentTypeV1, strings.NewReader(`{"schema":"{\"type\":\"string\"}"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	t.Logf("%d %s in %v", resp.StatusCode, b, time.Since(start))
	start = time.Now()
	resp, _ = http.Post(srv.URL+"/subjects/u-value/versions", registry.ContentTypeV1, strings.NewReader(`{"schema":"{\"type\":\"long\"}"}`))
	b, _ = io.ReadAll(resp.Body)
	t.Logf("%d %s in %v", resp.StatusCode, b, time.Since(start))
	resp, _ = http.Get(srv.URL + "/subjects")
	b, _ = io.ReadAll(resp.Body)
	t.Logf("%d %s", resp.StatusCode, b)
}
