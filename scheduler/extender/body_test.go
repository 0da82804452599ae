package extender

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// countingReader serves n bytes of a JSON string body and counts what the
// server consumed.
type countingReader struct {
	left int64
	read atomic.Int64
	head bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	if !r.head {
		r.head = true
		n := copy(p, `{"nodenames":["`)
		r.read.Add(int64(n))
		return n, nil
	}
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	n = min(n, r.left)
	for i := range n {
		p[i] = 'x'
	}
	r.left -= n
	r.read.Add(n)
	return int(n), nil
}

// An oversize body is refused with 413 and is not read much beyond the
// limit (so not held in memory), whether or not it declares its length.
func TestHTTPOversizeBody(t *testing.T) {
	const limit = 1 << 20
	srv, _, ready := newTestServer(t, limit)
	ready.SetSynced(true)
	for _, declared := range []bool{true, false} {
		body := &countingReader{left: 100 << 20}
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/filter", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if declared {
			req.ContentLength = 100<<20 + 15
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may close the connection while the client still
			// writes; what matters is how much it read.
			t.Logf("declared=%v: %v", declared, err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than") {
				t.Errorf("declared=%v: answer %d %q, want 413", declared, resp.StatusCode, b)
			}
		}
		// The client may have buffered some bytes into the socket beyond
		// what the server read; allow a few MiB of buffers, not 100 MiB.
		if got := body.read.Load(); got > limit+8<<20 {
			t.Errorf("declared=%v: the client sent %d bytes of a body over the %d byte limit", declared, got, limit)
		}
	}
}

// Bodies decoded at once are capped: with every slot taken, a verb answers
// 429 with Retry-After instead of reading its body.
func TestHTTPConcurrentBodiesCapped(t *testing.T) {
	ext, _, _ := newTestExtender(t, testNodes(t))
	logger, _ := ktesting.NewTestContext(t)
	srv := httptest.NewServer(NewHandler(logger, ext, syncedGate(), HandlerOptions{MaxConcurrentBodies: 1, BodyWait: 50 * time.Millisecond}))
	t.Cleanup(srv.Close)

	// The first request takes the only slot and holds it with a body that
	// never ends until the test closes it.
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/filter", "application/json", pr)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	if _, err := io.WriteString(pw, `{"pod":`); err != nil {
		t.Fatal(err)
	}
	// Poll until the slot is taken, then a second verb must be refused.
	var code int
	var retry string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Post(srv.URL+"/prioritize", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code, retry = resp.StatusCode, resp.Header.Get("Retry-After")
		if code == http.StatusTooManyRequests {
			break
		}
	}
	if code != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("second body while the only slot is held = %d (Retry-After %q), want 429 with Retry-After", code, retry)
	}
	// Cutting the first body ends it (the client sees an error or a 400).
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if got := <-first; got != 0 && got != http.StatusBadRequest {
		t.Errorf("first request = %d, want 400 or a client error (its body was cut)", got)
	}
	// The slot is free again.
	resp, err := http.Post(srv.URL+"/prioritize", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after the slot is freed = %d, want the verb's 400", resp.StatusCode)
	}
}
