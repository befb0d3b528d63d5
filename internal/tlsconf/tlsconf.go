// Package tlsconf makes minipipe's TLS configurations: a server certificate that can be reloaded while
// connections stay open (SIGHUP after a renewal), and client configurations for Kafka from PEM files.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Reloader serves a certificate and key pair read from PEM files, read again by Reload. Connections
// already open keep the certificate they began with; new handshakes get the new one.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	loaded            atomic.Pointer[string] // the files' stamp when last read
}

// NewReloader reads the pair once; an error names the file at fault (never the key's bytes).
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate file and a key file")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the pair again; on an error the certificate in use stays.
func (r *Reloader) Reload() error {
	st := r.stamp() // before reading: a change while reading is seen by the next Watch check
	r.loaded.Store(&st)
	cert, err := tls.LoadX509KeyPair(filepath.Clean(r.certFile), filepath.Clean(r.keyFile))
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	r.cert.Store(&cert)
	return nil
}

// Watch reloads the pair whenever either file changes (size, time or identity: a Kubernetes Secret volume
// swaps a symbolic link, cert-manager renews in place), checked every interval until ctx ends; report is told
// the outcome of each reload. No signal is needed, as none is sent in a pod.
func (r *Reloader) Watch(ctx context.Context, every time.Duration, report func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := r.stamp(); now != *r.loaded.Load() {
			report(r.Reload())
		}
	}
}

// stamp identifies the files' current versions.
func (r *Reloader) stamp() string {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d/", st.Size(), st.ModTime().UnixNano())
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				fmt.Fprintf(&b, "%d/%d;", sys.Dev, sys.Ino)
			}
		} else {
			b.WriteString("missing;")
		}
	}
	return b.String()
}

// Leaf is the certificate in use.
func (r *Reloader) Leaf() *x509.Certificate { return r.cert.Load().Leaf }

// ServerConfig is a server configuration with the reloadable certificate: TLS 1.2 and later, HTTP/2 and
// HTTP/1.1 offered.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// ClientConfig is a client configuration: caFile (PEM bundle; empty: the system's roots) is what the
// server's certificate must chain to, certFile and keyFile an optional client certificate, serverName the
// name to check when it differs from the address dialled.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(filepath.Clean(caFile))
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate file and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Clean(certFile), filepath.Clean(keyFile))
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
