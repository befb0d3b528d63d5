package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are PEM files of a test certificate authority and a server certificate it signed for 127.0.0.1,
// ::1 and localhost.
type Certs struct {
	CA, Cert, Key string
	Serial        *big.Int
}

// NewCerts writes a CA (once per dir) and a new server certificate into dir (t.TempDir() when empty); a
// second call with the same dir renews the server certificate under the same CA, as a renewal would.
func NewCerts(t testing.TB, dir string) Certs {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	caKeyFile, caFile := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.pem")
	var caKey *ecdsa.PrivateKey
	var ca *x509.Certificate
	if b, err := os.ReadFile(caKeyFile); err == nil {
		blk, _ := pem.Decode(b)
		caKey, err = x509.ParseECPrivateKey(blk.Bytes)
		must(err)
		cb, err := os.ReadFile(caFile)
		must(err)
		blk, _ = pem.Decode(cb)
		ca, err = x509.ParseCertificate(blk.Bytes)
		must(err)
	} else {
		caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "minipipe test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		must(err)
		ca, err = x509.ParseCertificate(der)
		must(err)
		kb, err := x509.MarshalECPrivateKey(caKey)
		must(err)
		must(os.WriteFile(caKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
		must(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	must(err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(err)
	kb, err := x509.MarshalECPrivateKey(key)
	must(err)
	c := Certs{CA: caFile, Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server.key"), Serial: serial}
	// Written aside and renamed, so that a reload never reads half a file.
	for path, data := range map[string][]byte{
		c.Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		c.Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		must(os.WriteFile(path+".tmp", data, 0o600))
		must(os.Rename(path+".tmp", path))
	}
	return c
}
