package tlsconf_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/tlsconf"
	"github.com/minipipe/minipipe/testkit"
)

// A renewed certificate is served to new connections after Reload; a connection already open keeps working;
// a broken pair leaves the certificate in use.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	first := testkit.NewCerts(t, dir)
	r, err := tlsconf.NewReloader(first.Cert, first.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{TLSConfig: r.ServerConfig(), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	defer hs.Close()
	srv := struct{ URL string }{"https://" + ln.Addr().String()}
	cfg, err := tlsconf.ClientConfig(first.CA, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	serial := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	// A connection opened before the renewal.
	kept, err := tls.Dial("tcp", ln.Addr().String(), cfg.Clone())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if got := kept.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.Serial) != 0 {
		t.Fatalf("serial %s, want %s", got, first.Serial)
	}
	second := testkit.NewCerts(t, dir)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone()}}
	if got := serial(fresh); got != second.Serial.String() {
		t.Fatalf("after reload: serial %s, want %s", got, second.Serial)
	}
	// The connection opened before still serves requests.
	if _, err := kept.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the connection opened before the reload: %v %v", resp, err)
	}
	if err := os.WriteFile(second.Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a broken key reloaded")
	}
	if got := serial(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone()}}); got != second.Serial.String() {
		t.Fatalf("after a failed reload: serial %s", got)
	}
	// Without the CA the server is not trusted.
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}).Get(srv.URL); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// Watch follows a Kubernetes Secret volume: the files are links through ..data, which the kubelet swaps to a
// new directory when the Secret changes (cert-manager renewing it); no signal is sent.
func TestWatchSecretVolume(t *testing.T) {
	vol := t.TempDir()
	version := func(name string) {
		t.Helper()
		dir := filepath.Join(vol, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		certs := testkit.NewCerts(t, dir)
		if err := os.Rename(certs.Cert, filepath.Join(dir, "tls.crt")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(certs.Key, filepath.Join(dir, "tls.key")); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1")
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(vol, f)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := tlsconf.NewReloader(filepath.Join(vol, "tls.crt"), filepath.Join(vol, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	first := r.Leaf().SerialNumber.String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan error, 10)
	go r.Watch(ctx, 20*time.Millisecond, func(err error) { reloads <- err })
	version("..v2")
	select {
	case err := <-reloads:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the swapped Secret volume was not reloaded")
	}
	if r.Leaf().SerialNumber.String() == first {
		t.Fatal("reloaded, but the certificate in use is the first")
	}
	// Nothing changes: no reload.
	select {
	case err := <-reloads:
		t.Fatalf("a reload without a change: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}
