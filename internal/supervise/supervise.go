// Package supervise keeps a goka processor running: a processor that stops with an error (Kafka gone, a
// partition that failed) is rebuilt and run again with exponential backoff, until the context ends. A
// Monitor counts the restarts of every processor and says when one keeps restarting.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
)

// Run runs build()'s processor until ctx ends, rebuilding it after every failure. The backoff starts at a
// second, doubles up to 30 s, and starts over once a processor has run for a minute. mon may be nil.
func Run(ctx context.Context, log *slog.Logger, name string, build func() (*goka.Processor, error), mon *Monitor) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		mon.started(name)
		proc, err := build()
		if err == nil {
			err = proc.Run(ctx)
		}
		if ctx.Err() != nil {
			mon.stopped(name)
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		msg := fmt.Sprint(err)
		if len(msg) > 600 { // goka aggregates every error of a partition into one
			msg = msg[:600] + "…"
		}
		mon.failed(name, msg)
		log.Error("processor stopped; restarting", "processor", name, "error", msg, "backoff", backoff)
		select {
		case <-ctx.Done():
			mon.stopped(name)
			return
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

// KeepsRestarting is how many restarts within Window make a processor one that keeps restarting, unless
// it has run for Stable since its last one.
const (
	KeepsRestarting = 3
	Window          = 5 * time.Minute
	Stable          = time.Minute
)

// Monitor watches the supervised processors of one process.
type Monitor struct {
	mu       sync.Mutex
	procs    map[string]*procState
	restarts *prometheus.CounterVec
	total    map[string]float64 // restarts by processor since the process started
	now      func() time.Time
}

type procState struct {
	failures []time.Time
	lastErr  string
	since    time.Time // when the current run started (zero: not running)
}

// NewMonitor registers the restart counter with reg (nil: unregistered).
func NewMonitor(reg prometheus.Registerer) *Monitor {
	m := &Monitor{procs: map[string]*procState{}, total: map[string]float64{}, now: time.Now,
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minipipe_processor_restarts_total",
			Help: "Times a processor stopped with an error and was started again, by processor."}, []string{"processor"})}
	if reg != nil {
		reg.MustRegister(m.restarts)
	}
	return m
}

func (m *Monitor) state(name string) *procState {
	s := m.procs[name]
	if s == nil {
		s = &procState{}
		m.procs[name] = s
	}
	return s
}

func (m *Monitor) started(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state(name).since = m.now()
}

func (m *Monitor) stopped(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.procs, name)
}

func (m *Monitor) failed(name, msg string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(name).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total[name]++
	s := m.state(name)
	now := m.now()
	s.failures = append(s.failures, now)
	for len(s.failures) > 0 && now.Sub(s.failures[0]) > Window {
		s.failures = s.failures[1:]
	}
	s.lastErr, s.since = msg, time.Time{}
}

// Restarts are the restarts of each processor since the process started (what
// minipipe_processor_restarts_total counts).
func (m *Monitor) Restarts() map[string]float64 {
	out := map[string]float64{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.total {
		out[k] = v
	}
	return out
}

// Restarting lists the processors that keep restarting (KeepsRestarting times within Window, and not
// running stably since), with their last error; empty when all is well.
func (m *Monitor) Restarting() []string {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []string
	for name, s := range m.procs {
		n := 0
		for _, f := range s.failures {
			if now.Sub(f) <= Window {
				n++
			}
		}
		if n < KeepsRestarting || (!s.since.IsZero() && now.Sub(s.since) >= Stable) {
			continue
		}
		out = append(out, fmt.Sprintf("processor %s keeps restarting (%d times in %s; last error: %s)", name, n, Window, s.lastErr))
	}
	sort.Strings(out)
	return out
}

// Summary joins Restarting into one line.
func (m *Monitor) Summary() string { return strings.Join(m.Restarting(), "; ") }
