package harness

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
)

// user is one identity of the static token file.
type user struct {
	name   string
	groups []string
	token  string
}

// The identities the harness authenticates.
const (
	adminUser     = "gpuslice-e2e-admin"
	schedulerUser = "system:kube-scheduler"
)

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeTokenFile writes the kube-apiserver --token-auth-file.
func writeTokenFile(path string, users []user) error {
	var b strings.Builder
	for i, u := range users {
		fmt.Fprintf(&b, "%s,%s,uid-%d,%q\n", u.token, u.name, i, strings.Join(u.groups, ","))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// writeServingCert writes a self-signed serving certificate for 127.0.0.1
// and localhost, and returns the PEM bundle clients trust.
func writeServingCert(dir string) (certFile, keyFile string, caPEM []byte, err error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	if err != nil {
		return "", "", nil, fmt.Errorf("serving cert: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", nil, fmt.Errorf("write serving cert: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", nil, fmt.Errorf("write serving key: %w", err)
	}
	return certFile, keyFile, certPEM, nil
}

// writeServiceAccountKeys writes an RSA key pair for signing and verifying
// service-account tokens.
func writeServiceAccountKeys(dir string) (pubFile, keyFile string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("service-account public key: %w", err)
	}
	keyFile, pubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", fmt.Errorf("write service-account key: %w", err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return "", "", fmt.Errorf("write service-account public key: %w", err)
	}
	return pubFile, keyFile, nil
}

// writeKubeconfig writes a kubeconfig for server with a bearer token.
func writeKubeconfig(path, server string, caPEM []byte, userName, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gpuslice-e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[userName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["gpuslice-e2e"] = &clientcmdapi.Context{Cluster: "gpuslice-e2e", AuthInfo: userName}
	cfg.CurrentContext = "gpuslice-e2e"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
