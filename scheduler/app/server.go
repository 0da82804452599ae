package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// serverTimeouts bound how long one connection may hold the server.
type serverTimeouts struct {
	// ReadHeader bounds reading the request headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included: a half-sent
	// body gives up its connection (and its decode slot) after it.
	Read time.Duration
	// Write bounds the time from the end of the headers to the end of the
	// answer; it covers bind's one API call.
	Write time.Duration
	// Idle bounds a keep-alive connection waiting for its next request.
	Idle time.Duration
}

// defaultServerTimeouts: kube-scheduler sends a whole request at once and
// waits at most its extender httpTimeout (10s in the shipped config) for the
// answer.
func defaultServerTimeouts() serverTimeouts {
	return serverTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}
}

// newHTTPServer returns the extender's HTTP server; tlsConfig is nil for
// plain HTTP.
func newHTTPServer(ctx context.Context, h http.Handler, tlsConfig *tls.Config, t serverTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}

// serverTLS returns the server's TLS configuration from the options: nil
// without a serving certificate. With a client CA, a client certificate is
// verified against it whenever one is presented (a bad one fails the
// handshake), and the verbs refuse callers without one (see
// extender.HandlerOptions.RequireClientCert); the probes stay reachable
// for kubelet, which presents none.
func serverTLS(o *Options) (*tls.Config, error) {
	if o.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if o.ClientCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(o.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("read --client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--client-ca-file %s holds no PEM certificate", o.ClientCAFile)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg, nil
}
