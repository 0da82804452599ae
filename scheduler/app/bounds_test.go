package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// A half-sent body gives up its connection after the read timeout: the
// server answers (or closes) instead of waiting for the rest forever.
func TestServerSlowBodyTimesOut(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	read := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
		w.WriteHeader(http.StatusBadRequest)
	})
	timeouts := defaultServerTimeouts()
	timeouts.Read = 300 * time.Millisecond
	srv := httptest.NewUnstartedServer(h)
	srv.Config = newHTTPServer(ctx, h, nil, timeouts)
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"pod\":"); err != nil {
		t.Fatal(err)
	}
	// The test's own bound: far above the server's timeout.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadString('\n')
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still holds a half-sent body after %v", time.Since(start))
	}
	select {
	case err := <-read:
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("handler read the half-sent body with err %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never finished reading")
	}
}

func TestServerTimeoutsAreSet(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newHTTPServer(ctx, http.NotFoundHandler(), nil, defaultServerTimeouts())
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": s.ReadHeaderTimeout, "ReadTimeout": s.ReadTimeout, "WriteTimeout": s.WriteTimeout, "IdleTimeout": s.IdleTimeout} {
		if d <= 0 {
			t.Errorf("%s = %v, want a bound", name, d)
		}
	}
}
