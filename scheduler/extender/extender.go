package extender

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// Extender answers kube-scheduler's extender calls. It is safe for
// concurrent use.
type Extender struct {
	cache    *cache.Cache
	policies *Policies
	client   kubernetes.Interface
	pods     BoundPods
	clock    clock.PassiveClock

	// pending remembers what filter learned about each pod, by UID: the
	// feasible nodes bind accepts, the scores prioritize reuses, and
	// whether the policy learned the request.
	pending *pendingPods

	metrics *metrics.Metrics // nil: none
	notify  *notifier

	// modes maps runtime classes to the VM-sandbox isolation mode their
	// pods need (WithRuntimeClassModes); nil: every pod runs containers.
	modes api.RuntimeClassModes

	// shortlist bounds the feasible nodes filter answers with
	// (WithShortlist); 0: all.
	shortlist int
}

// Option configures an Extender.
type Option func(*Extender)

// WithMetrics records the verbs' outcomes in m.
func WithMetrics(m *metrics.Metrics) Option { return func(e *Extender) { e.metrics = m } }

// WithEvents records events on pods with rec: a GPU pod no node can place
// and a failed bind, at most once per pod and reason every interval (0:
// DefaultEventInterval), on the extender's clock.
func WithEvents(rec events.EventRecorder, interval time.Duration) Option {
	return func(e *Extender) { e.notify = newNotifier(rec, e.clock, interval) }
}

// WithRuntimeClassModes places the pods of the runtime classes in m on GPUs
// of the mapped VM-sandbox mode only (vgpu, passthrough), and every other
// pod on GPUs of shared modes only (api.IsolationAllowed).
func WithRuntimeClassModes(m api.RuntimeClassModes) Option {
	return func(e *Extender) { e.modes = m }
}

// BoundPods finds a bound pod by namespace and name (cache.PodLister over
// the pod informer's store): bind refuses a pod that is bound already, or
// whose UID is not the one kube-scheduler scheduled.
type BoundPods interface {
	BoundPod(namespace, name string) (uid types.UID, node string, found bool)
}

// NewExtender wires an extender. pods may be nil (bind then skips the
// lister's checks that the pod is unbound and has the filtered UID).
func NewExtender(c *cache.Cache, policies *Policies, client kubernetes.Interface, pods BoundPods, clk clock.PassiveClock, limits PendingLimits, opts ...Option) *Extender {
	e := &Extender{
		cache:    c,
		policies: policies,
		client:   client,
		pods:     pods,
		clock:    clk,
		pending:  newPendingPods(limits, clk),
	}
	for _, o := range opts {
		o(e)
	}
	if e.notify == nil {
		e.notify = newNotifier(nil, clk, 0)
	}
	return e
}
