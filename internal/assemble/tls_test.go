package assemble

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/telemetry"
	"go.opentelemetry.io/otel/trace/noop"
)

// certs makes a CA and a server and a client certificate signed by it,
// written as PEM files into dir.
func certs(t *testing.T, dir string) (ca *x509.CertPool, server tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	ca = x509.NewCertPool()
	ca.AddCert(caCert)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (tls.Certificate, []byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{"localhost"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, der, k
	}
	server, _, _ = issue("server", 2, x509.ExtKeyUsageServerAuth)
	_, clientDER, clientKey := issue("client", 3, x509.ExtKeyUsageClientAuth)
	write("client.pem", "CERTIFICATE", clientDER)
	kb, _ := x509.MarshalECPrivateKey(clientKey)
	write("client-key.pem", "EC PRIVATE KEY", kb)
	return ca, server
}

// A remote replica over TLS that requires a client certificate: the
// registry's tls settings produce a client that gets in, and without the
// certificate the handshake is refused.
func TestRemoteTLSWithClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, serverCert := certs(t, dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	b := &builder{Deps: Deps{Tracing: &telemetry.Tracing{Provider: noop.NewTracerProvider()}}, clients: map[config.TLS]*http.Client{}}
	withCert, err := b.client(config.TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := withCert.Get(srv.URL)
	if err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	resp.Body.Close()
	noCert, err := b.client(config.TLS{CAFile: filepath.Join(dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := noCert.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("without a client certificate the server let us in")
	}
	system, _ := b.client(config.TLS{ServerName: "other"})
	if resp, err := system.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a server signed by an unknown CA was trusted")
	}
}
