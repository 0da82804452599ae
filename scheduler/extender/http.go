package extender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// HandlerOptions configures NewHandler. Zero fields take the defaults.
type HandlerOptions struct {
	// Version is what GET /version reports.
	Version string
	// MaxBodyBytes bounds one request body (DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MaxConcurrentBodies bounds the request bodies read and decoded at
	// once (DefaultMaxConcurrentBodies); a verb that finds no slot within
	// BodyWait answers 429 with Retry-After.
	MaxConcurrentBodies int
	// BodyWait is how long a verb waits for a decode slot
	// (DefaultBodyWait).
	BodyWait time.Duration
	// RequireClientCert refuses the verbs (401) to callers that did not
	// present a client certificate the TLS server verified. The probes
	// and /version stay open, so kubelet's HTTPS probes need no
	// certificate.
	RequireClientCert bool
	// Metrics, when set, counts and times the verbs and is served on GET
	// /metrics, behind the same client authentication as the verbs.
	Metrics *metrics.Metrics
	// Profiling serves Go's pprof handlers on GET /debug/pprof/, behind
	// the verbs' client authentication (--profiling).
	Profiling bool
}

// Handler serves the extender's HTTP API.
type Handler struct {
	ext    *Extender
	ready  *Readiness
	opts   HandlerOptions
	bodies chan struct{} // decode slots
	logger klog.Logger
}

// NewHandler returns the extender's router: POST /filter, /prioritize,
// /preempt and /bind, answered only to an authenticated caller (with
// RequireClientCert) while ready passes (else 503 with a JSON error "not
// ready: ..."); GET /healthz (liveness: always 200), /readyz (200 exactly
// when the verbs are answered) and /version.
func NewHandler(logger klog.Logger, ext *Extender, ready *Readiness, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxConcurrentBodies <= 0 {
		o.MaxConcurrentBodies = DefaultMaxConcurrentBodies
	}
	if o.BodyWait <= 0 {
		o.BodyWait = DefaultBodyWait
	}
	h := &Handler{ext: ext, ready: ready, opts: o, bodies: make(chan struct{}, o.MaxConcurrentBodies), logger: logger}
	version := o.Version
	r := httprouter.New()
	r.POST("/filter", h.gated("filter", h.filter))
	r.POST("/prioritize", h.gated("prioritize", h.prioritize))
	r.POST("/preempt", h.gated("preempt", h.preempt))
	r.POST("/bind", h.gated("bind", h.bind))
	if o.Metrics != nil {
		r.GET("/metrics", h.authOnly(o.Metrics.Handler()))
	}
	if o.Profiling {
		r.GET("/debug/pprof/*item", h.authOnly(pprofHandler()))
	}
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) { writeText(w, http.StatusOK, "ok") })
	r.GET("/readyz", h.readyz)
	r.GET("/version", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]string{"version": version})
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeText(w, http.StatusNotFound, fmt.Sprintf("unknown path %q: the extender serves POST /filter, /prioritize, /preempt, /bind and GET /healthz, /readyz, /version, /metrics", req.URL.Path))
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
	var wire wireArgs
	if code, err := h.decode(w, r, &wire); err != nil {
		return nil, code, err
	}
	args := wire.args()
	if err := validateArgs(args); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return args, 0, nil
}

func validateArgs(args *extenderv1.ExtenderArgs) error {
	if args.Pod == nil {
		return errors.New("extender args have no pod")
	}
	if args.Pod.UID == "" || args.Pod.Name == "" {
		return errors.New("extender args pod has no name or uid")
	}
	if args.NodeNames == nil && args.Nodes == nil {
		return errors.New("extender args have neither nodenames nor nodes")
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
	if err := validateBindingArgs(&args); err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	res := extenderv1.ExtenderBindingResult{}
	if err := h.ext.Bind(h.ctx(r, "bind"), &args); err != nil {
		// kube-scheduler reads the error from the result body.
		res.Error = err.Error()
		markFailed(w)
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
