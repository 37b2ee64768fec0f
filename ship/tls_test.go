package ship

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA issues certificates for a test: a CA, a server certificate for
// 127.0.0.1 and a client certificate, all written as PEM files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tailcar test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns a certificate and key, as a tls.Certificate and as PEM
// files.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile := ca.write(t, name+".pem", "CERTIFICATE", der)
	keyFile := ca.write(t, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

// Ensure a backend that requires a client certificate accepts tailcar's,
// verified against a private CA, and refuses a client without one.
func TestHTTP_TLSClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	serverCert, _, _ := ca.issue(t, "server", x509.ExtKeyUsageServerAuth)
	_, clientCert, clientKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &capture{}
	srv := httptest.NewUnstartedServer(c)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(ca.dir, "ca.pem")

	withCert, err := TLSConfig(caFile, clientCert, clientKey, false)
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip, TLS: withCert})
	if _, _, err := shipAll(t, Config{Sink: sink}, 20); err != nil {
		t.Fatal(err)
	}
	requireEach(t, c.got(), 20)
	if n := len(c.requests); n == 0 || c.requests[0].TLS == nil || len(c.requests[0].TLS.PeerCertificates) == 0 {
		t.Fatal("the server saw no client certificate")
	}

	without, _ := TLSConfig(caFile, "", "", false)
	bare, _ := NewHTTP(Endpoint{URL: mustURL(t, srv.URL), Compression: CompressionGzip, TLS: without})
	b := &Batch{}
	b.add([]byte(`{}`), meta(1, 1))
	b.setPart(0, 1)
	if err := bare.Send(t.Context(), b); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	var fe *TLSFileError
	if _, err := TLSConfig(caFile, clientCert, "", false); !errors.As(err, &fe) || fe.Which != "key" {
		t.Errorf("a certificate without its key: %v; want an error about the key", err)
	}
	if _, err := TLSConfig(caFile, clientCert, filepath.Join(t.TempDir(), "missing.key"), false); !errors.As(err, &fe) || fe.Which != "key" {
		t.Errorf("a missing key file: %v; want an error about the key", err)
	}
	if _, err := TLSConfig(caFile, caFile, clientCert, false); !errors.As(err, &fe) || fe.Which != "cert" {
		t.Errorf("an unusable certificate: %v; want an error about the certificate", err)
	}
	insecure, _ := TLSConfig("", "", "", true)
	if !insecure.InsecureSkipVerify {
		t.Error("TLS_INSECURE did not switch verification off")
	}
	def, _ := TLSConfig("", "", "", false)
	if def.InsecureSkipVerify {
		t.Error("verification is off by default")
	}
}
