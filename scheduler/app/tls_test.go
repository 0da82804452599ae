package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by the CA, for a server
// (on 127.0.0.1) or a client.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// With --client-ca-file the verbs need a client certificate the CA signed:
// none gets 401, one from another CA fails the handshake; the probes stay
// open so kubelet can probe over HTTPS.
func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, "gpuslice-ca"), newTestCA(t, "other-ca")
	srvCert, srvKey := ca.issue(t, "gpuslice-extender", true)
	o := NewOptions()
	o.TLSCertFile = writeFile(t, dir, "tls.crt", srvCert)
	o.TLSKeyFile = writeFile(t, dir, "tls.key", srvKey)
	o.ClientCAFile = writeFile(t, dir, "ca.crt", ca.pem)
	addr := startServe(t, o, Deps{Version: "test"})
	base := "https://" + addr

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(signer *testCA) *http.Client {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if signer != nil {
			c, k := signer.issue(t, "kube-scheduler", false)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			// Present the certificate even when its issuer is not among
			// the CAs the server asks for.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	call := func(c *http.Client, method, path string) (int, string, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	testutil.Poll(t, "the caches to sync", func() bool {
		code, _, err := call(client(nil), "GET", "/readyz")
		return err == nil && code == 200
	})

	anonymous, trusted, foreign := client(nil), client(ca), client(other)
	for _, path := range []string{"/filter", "/prioritize", "/preempt", "/bind"} {
		if code, body, err := call(anonymous, "POST", path); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "client certificate") {
			t.Errorf("POST %s without a client certificate = %d %q %v, want 401", path, code, body, err)
		}
		// Authenticated, the empty body reaches the verb and is a 400.
		if code, body, err := call(trusted, "POST", path); err != nil || code != http.StatusBadRequest {
			t.Errorf("POST %s with a trusted client certificate = %d %q %v, want the verb's 400", path, code, body, err)
		}
		if _, _, err := call(foreign, "POST", path); err == nil {
			t.Errorf("POST %s with a certificate from another CA: the handshake succeeded", path)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/version"} {
		if code, body, err := call(anonymous, "GET", path); err != nil || code != 200 {
			t.Errorf("GET %s without a client certificate = %d %q %v, want 200", path, code, body, err)
		}
	}
	// /metrics sits behind the verbs' authentication.
	if code, body, err := call(anonymous, "GET", "/metrics"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a client certificate = %d %q %v, want 401", code, body, err)
	}
	code, body, err := call(trusted, "GET", "/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "gpuslice_extender_ready 1") ||
		!strings.Contains(body, `gpuslice_extender_requests_total{result="unauthorized",verb="filter"} 1`) {
		t.Errorf("GET /metrics with a trusted client certificate = %d %v, want 200 with the extender's series:\n%s", code, err, body)
	}
}
