// Package supervise keeps a goka processor running: a processor that stops with an error (Kafka gone, a
// partition that failed) is rebuilt and run again with exponential backoff, until the context ends.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
)

// Run runs build()'s processor until ctx ends, rebuilding it after every failure. The backoff starts at a
// second, doubles up to 30 s, and starts over once a processor has run for a minute.
func Run(ctx context.Context, log *slog.Logger, name string, build func() (*goka.Processor, error)) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		proc, err := build()
		if err == nil {
			err = proc.Run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		msg := fmt.Sprint(err)
		if len(msg) > 600 { // goka aggregates every error of a partition into one
			msg = msg[:600] + "…"
		}
		log.Error("processor stopped; restarting", "processor", name, "error", msg, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}
