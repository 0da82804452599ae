package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// CertAuthority is a throw-away certificate authority for the extender's
// mutual TLS: it signs the extender's serving certificate and the client
// certificate kube-scheduler presents. Tests make a second one to get a
// client certificate the extender must not trust.
type CertAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, as the extender's --client-ca-file and the
	// scheduler's tlsConfig.caFile hold it.
	PEM []byte
}

// NewCertAuthority makes a self-signed CA named cn.
func NewCertAuthority(cn string) (*CertAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	return &CertAuthority{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Pool returns a pool holding only this CA.
func (ca *CertAuthority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue signs a leaf certificate for cn: a serving certificate for
// 127.0.0.1 and localhost when server is set, else a client certificate.
func (ca *CertAuthority) Issue(cn string, server bool) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("key for %s: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate for %s: %w", cn, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("key for %s: %w", cn, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// IssueFiles is Issue, written to DIR/NAME.crt and DIR/NAME.key.
func (ca *CertAuthority) IssueFiles(dir, name, cn string, server bool) (certFile, keyFile string, err error) {
	c, k, err := ca.Issue(cn, server)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", certFile, err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", keyFile, err)
	}
	return certFile, keyFile, nil
}

// ExtenderTLS is the mutual TLS material between kube-scheduler and the
// extender: one CA signs the extender's serving certificate and
// kube-scheduler's client certificate.
type ExtenderTLS struct {
	CA *CertAuthority
	// CAFile holds CA.PEM: the extender's --client-ca-file and the
	// scheduler's tlsConfig.caFile.
	CAFile string
	// ServingCert and ServingKey are the extender's --tls-cert-file and
	// --tls-private-key-file.
	ServingCert, ServingKey string
	// ClientCert and ClientKey are kube-scheduler's (tlsConfig.certFile,
	// tlsConfig.keyFile).
	ClientCert, ClientKey string
	// ClientAuth reports whether the extender was started with
	// --client-ca-file, i.e. verifies client certificates.
	ClientAuth bool
}

// writeExtenderTLS makes the CA and both certificates in dir.
func writeExtenderTLS(dir string) (*ExtenderTLS, error) {
	ca, err := NewCertAuthority("gpuslice-e2e-extender-ca")
	if err != nil {
		return nil, err
	}
	x := &ExtenderTLS{CA: ca, CAFile: filepath.Join(dir, "extender-ca.crt")}
	if err := os.WriteFile(x.CAFile, ca.PEM, 0o600); err != nil {
		return nil, fmt.Errorf("write extender CA: %w", err)
	}
	if x.ServingCert, x.ServingKey, err = ca.IssueFiles(dir, "extender-serving", "gpuslice-extender", true); err != nil {
		return nil, err
	}
	if x.ClientCert, x.ClientKey, err = ca.IssueFiles(dir, "scheduler-client", schedulerUser, false); err != nil {
		return nil, err
	}
	return x, nil
}

// HTTPClient returns a client that trusts the extender's serving
// certificate and presents cert (nil: no client certificate).
func (x *ExtenderTLS) HTTPClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: x.CA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// SchedulerCert loads kube-scheduler's client certificate.
func (x *ExtenderTLS) SchedulerCert() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(x.ClientCert, x.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("load scheduler client certificate: %w", err)
	}
	return &c, nil
}
