package extender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// DefaultMaxBodyBytes bounds a request body: full node objects for
// thousands of nodes fit, a runaway client does not.
const DefaultMaxBodyBytes = 64 << 20

// Handler serves the extender's HTTP API.
type Handler struct {
	ext          *Extender
	ready        *Readiness
	version      string
	maxBodyBytes int64
	logger       klog.Logger
}

// NewHandler returns the extender's router: POST /filter, /prioritize,
// /preempt and /bind, answered only while ready passes (else 503 with a JSON
// error "not ready: ..."); GET /healthz (liveness: always 200), /readyz (200
// exactly when the verbs are answered) and /version.
func NewHandler(logger klog.Logger, ext *Extender, ready *Readiness, version string, maxBodyBytes int64) http.Handler {
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultMaxBodyBytes
	}
	h := &Handler{ext: ext, ready: ready, version: version, maxBodyBytes: maxBodyBytes, logger: logger}
	r := httprouter.New()
	r.POST("/filter", h.gated(h.filter))
	r.POST("/prioritize", h.gated(h.prioritize))
	r.POST("/preempt", h.gated(h.preempt))
	r.POST("/bind", h.gated(h.bind))
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) { writeText(w, http.StatusOK, "ok") })
	r.GET("/readyz", h.readyz)
	r.GET("/version", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]string{"version": version})
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeText(w, http.StatusNotFound, fmt.Sprintf("unknown path %q: the extender serves POST /filter, /prioritize, /preempt, /bind and GET /healthz, /readyz, /version", req.URL.Path))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeText(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", req.Method, req.URL.Path))
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		logger.Error(fmt.Errorf("%v", v), "Handler panicked", "path", req.URL.Path)
		writeText(w, http.StatusInternalServerError, "internal error")
	}
	return r
}

func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if err := h.ready.Check(); err != nil {
		writeText(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeText(w, http.StatusOK, "ok")
}

// errorBody is the JSON body of a verb refused before it ran. Its field
// decodes into the Error field of kube-scheduler's result types too.
type errorBody struct {
	Error string `json:"error"`
}

// gated answers a verb only when the readiness gate passes. Otherwise it
// answers 503 with Retry-After: kube-scheduler treats any non-200 answer as
// an error of this scheduling cycle and retries the pod later.
func (h *Handler) gated(verb httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if err := h.ready.Check(); err != nil {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
			return
		}
		verb(w, r, ps)
	}
}

// errBadRequest marks client errors.
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

// decode reads a JSON body into v, enforcing content type and size.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not supported: send application/json", ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, h.maxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", h.maxBodyBytes)
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

func (h *Handler) ctx(r *http.Request, verb string) context.Context {
	return klog.NewContext(r.Context(), h.logger.WithValues("verb", verb))
}

func (h *Handler) filter(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	args, code, err := h.extenderArgs(w, r)
	if err != nil {
		writeText(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, h.ext.Filter(h.ctx(r, "filter"), args))
}

func (h *Handler) prioritize(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	args, code, err := h.extenderArgs(w, r)
	if err != nil {
		writeText(w, code, err.Error())
		return
	}
	list, err := h.ext.Prioritize(h.ctx(r, "prioritize"), args)
	if err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (h *Handler) extenderArgs(w http.ResponseWriter, r *http.Request) (*extenderv1.ExtenderArgs, int, error) {
	var args extenderv1.ExtenderArgs
	if code, err := h.decode(w, r, &args); err != nil {
		return nil, code, err
	}
	if err := validateArgs(&args); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return &args, 0, nil
}

func validateArgs(args *extenderv1.ExtenderArgs) error {
	if args.Pod == nil {
		return errBadRequest{"extender args have no pod"}
	}
	if args.Pod.UID == "" || args.Pod.Name == "" {
		return errBadRequest{"extender args pod has no name or uid"}
	}
	if args.NodeNames == nil && args.Nodes == nil {
		return errBadRequest{"extender args have neither nodenames nor nodes"}
	}
	return nil
}

func (h *Handler) preempt(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var args extenderv1.ExtenderPreemptionArgs
	if code, err := h.decode(w, r, &args); err != nil {
		writeText(w, code, err.Error())
		return
	}
	if args.Pod == nil {
		writeText(w, http.StatusBadRequest, "preemption args have no pod")
		return
	}
	res, err := h.ext.Preempt(h.ctx(r, "preempt"), &args)
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) bind(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var args extenderv1.ExtenderBindingArgs
	if code, err := h.decode(w, r, &args); err != nil {
		writeText(w, code, err.Error())
		return
	}
	if args.PodName == "" || args.PodNamespace == "" || args.PodUID == "" || args.Node == "" {
		writeText(w, http.StatusBadRequest, "binding args need podName, podNamespace, podUID and node")
		return
	}
	res := extenderv1.ExtenderBindingResult{}
	if err := h.ext.Bind(h.ctx(r, "bind"), &args); err != nil {
		// kube-scheduler reads the error from the result body.
		res.Error = err.Error()
		h.logger.V(2).Info("Bind failed", "pod", klog.KRef(args.PodNamespace, args.PodName), "node", args.Node, "err", err)
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
