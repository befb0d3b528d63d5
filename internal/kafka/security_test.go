package kafka

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/IBM/sarama"
)

func TestFatal(t *testing.T) {
	for _, tc := range []struct {
		err   error
		fatal bool
	}{
		{nil, false},
		{fmt.Errorf("kafka: client has run out of available brokers to talk to: %w", sarama.ErrSASLAuthenticationFailed), true},
		{errors.New("kafka: client has run out of available brokers to talk to: tls: failed to verify certificate: x509: certificate signed by unknown authority"), true},
		{errors.New("tls: first record does not look like a TLS handshake"), true},
		{errors.New("remote error: tls: bad certificate"), true},
		{fmt.Errorf("dial: %w", io.EOF), false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{errors.New("remote error: tls: internal error"), false},
		{sarama.ErrOutOfBrokers, false},
	} {
		got := Fatal(tc.err)
		if (got != nil) != tc.fatal || got != nil && !errors.Is(got, ErrAuth) {
			t.Errorf("Fatal(%v) = %v, want fatal %v", tc.err, got, tc.fatal)
		}
	}
}
