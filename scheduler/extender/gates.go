package extender

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
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
// pod later.
func (h *Handler) gated(verb httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if h.opts.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "a client certificate signed by the extender's client CA is required"})
			return
		}
		if err := h.ready.Check(); err != nil {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
			return
		}
		verb(w, r, ps)
	}
}
