package extender

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// errorBody is the JSON body of a verb refused before it ran. Its field
// decodes into the Error field of kube-scheduler's result types too.
type errorBody struct {
	Error string `json:"error"`
}

// gated answers a verb only to an authenticated caller (401 otherwise, when
// client certificates are required) and only when the readiness gate
// passes. Otherwise it answers 503 with Retry-After: kube-scheduler treats
// any non-200 answer as an error of this scheduling cycle and retries the
// pod later. Every answer is counted and timed under the verb's name.
func (h *Handler) gated(name string, verb httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() { h.opts.Metrics.ObserveRequest(name, sw.result(), time.Since(start)) }()
		if !h.authenticated(r) {
			writeJSON(sw, http.StatusUnauthorized, errorBody{Error: "a client certificate signed by the extender's client CA is required"})
			return
		}
		if err := h.ready.Check(); err != nil {
			sw.Header().Set("Retry-After", "1")
			writeJSON(sw, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
			return
		}
		verb(sw, r, ps)
	}
}

// authenticated reports whether the caller may use the verbs and
// /metrics: with RequireClientCert, it presented a client certificate the
// TLS server verified.
func (h *Handler) authenticated(r *http.Request) bool {
	return !h.opts.RequireClientCert || (r.TLS != nil && len(r.TLS.VerifiedChains) > 0)
}

// authOnly serves a GET endpoint (the Prometheus metrics, the pprof
// profiles) behind the verbs' authentication, not behind readiness: a
// replica that is not ready can still be looked at.
func (h *Handler) authOnly(serve http.Handler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		if !h.authenticated(r) {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "a client certificate signed by the extender's client CA is required"})
			return
		}
		serve.ServeHTTP(w, r)
	}
}

// statusWriter remembers the answer's status code, and whether the verb
// reported a failure inside a 200 answer (bind's result body).
type statusWriter struct {
	http.ResponseWriter
	code   int
	failed bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// markFailed records that a 200 answer carries an error (bind).
func markFailed(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok {
		sw.failed = true
	}
}

func (w *statusWriter) result() string {
	switch {
	case w.code == 0 || w.code == http.StatusOK:
		if w.failed {
			return metrics.ResultError
		}
		return metrics.ResultOK
	case w.code == http.StatusUnauthorized:
		return metrics.ResultUnauthorized
	case w.code == http.StatusServiceUnavailable:
		return metrics.ResultNotReady
	case w.code == http.StatusTooManyRequests:
		return metrics.ResultThrottled
	case w.code < 500:
		return metrics.ResultBadRequest
	}
	return metrics.ResultError
}
