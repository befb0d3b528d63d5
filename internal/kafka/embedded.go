package kafka

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process, in-memory Kafka-compatible broker (franz-go's kfake) for trying minipipe out
// without a real broker and for fast in-process tests. Everything in it is lost when the process exits.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts the in-memory broker; addr is host:port to listen on ("127.0.0.1:0" for any port).
func StartEmbedded(addr string, partitions int) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: %w", addr, err)
	}
	if host != "127.0.0.1" && host != "localhost" && host != "" {
		return nil, fmt.Errorf("embedded kafka listens on loopback only, not %q", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka port %q: %w", portStr, err)
	}
	if partitions <= 0 {
		partitions = 1
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(partitions),
		kfake.ClusterID("minipipe-embedded"),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return &Embedded{c: c}, nil
}

// Brokers are the bootstrap addresses.
func (e *Embedded) Brokers() []string { return e.c.ListenAddrs() }

// Cluster exposes kfake for fault injection in tests.
func (e *Embedded) Cluster() *kfake.Cluster { return e.c }

// Close stops the broker and drops its data.
func (e *Embedded) Close() { e.c.Close() }
