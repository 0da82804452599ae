package extender

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// DefaultMaxBodyBytes bounds a request body. It is sized for kube-scheduler's
// node-names-only calls (nodeCacheCapable: true, as shipped) at 15,000
// nodes: a node name is a DNS subdomain of at most 253 bytes, plus 3 bytes
// of JSON (quotes and comma), so 15,000 names take at most 3,840,000 bytes.
// The pod object rides along: etcd stores at most 1.5 MiB per object, and
// its JSON form may be about twice its stored form, so 3 MiB. 3.7 MiB +
// 3 MiB < 8 MiB. Calls with full node objects (nodeCacheCapable: false)
// need a larger --max-body-bytes on big clusters.
const DefaultMaxBodyBytes = 8 << 20

// DefaultMaxConcurrentBodies bounds the bodies read and decoded at once:
// with DefaultMaxBodyBytes, at most 64 MiB of raw bodies are held, whatever
// the number of connections. kube-scheduler sends one filter or prioritize
// at a time per scheduling cycle, plus binds (small) from its binding
// goroutines.
const DefaultMaxConcurrentBodies = 8

// DefaultBodyWait is how long a verb waits for a decode slot before it
// answers 429.
const DefaultBodyWait = 2 * time.Second

// decode reads a JSON body into v, enforcing content type and size. At most
// MaxConcurrentBodies bodies are read and decoded at once; a body that gets
// no slot in time is not read (429). A body over MaxBodyBytes is not read
// beyond the limit (413), and the connection is closed after the answer.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not supported: send application/json", ct)
		}
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", h.opts.MaxBodyBytes)
	}
	release, ok := h.acquireBody(r)
	if !ok {
		w.Header().Set("Retry-After", "1")
		return http.StatusTooManyRequests, fmt.Errorf("too many request bodies in flight (at most %d): retry", h.opts.MaxConcurrentBodies)
	}
	defer release()
	body := http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", h.opts.MaxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return http.StatusBadRequest, errors.New("request body is empty")
		}
		return http.StatusBadRequest, fmt.Errorf("request body is not valid JSON for this verb: %w", err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("request body has trailing data after the JSON object")
	}
	return 0, nil
}

// acquireBody takes a decode slot, waiting at most BodyWait (or until the
// request ends).
func (h *Handler) acquireBody(r *http.Request) (release func(), ok bool) {
	select {
	case h.bodies <- struct{}{}:
		return func() { <-h.bodies }, true
	default:
	}
	t := time.NewTimer(h.opts.BodyWait)
	defer t.Stop()
	select {
	case h.bodies <- struct{}{}:
		return func() { <-h.bodies }, true
	case <-t.C:
	case <-r.Context().Done():
	}
	return nil, false
}
