package extender

import (
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Extender answers kube-scheduler's extender calls. It is safe for
// concurrent use.
type Extender struct {
	cache    *cache.Cache
	policies *Policies
	client   kubernetes.Interface
	pods     corelisters.PodLister
	clock    clock.PassiveClock

	// pending remembers what filter learned about each pod, by UID: the
	// feasible nodes bind accepts, the scores prioritize reuses, and
	// whether the policy learned the request.
	pending *pendingPods
}

// NewExtender wires an extender. pods may be nil (bind then skips the
// lister's checks that the pod is unbound and has the filtered UID).
func NewExtender(c *cache.Cache, policies *Policies, client kubernetes.Interface, pods corelisters.PodLister, clk clock.PassiveClock, limits PendingLimits) *Extender {
	return &Extender{
		cache:    c,
		policies: policies,
		client:   client,
		pods:     pods,
		clock:    clk,
		pending:  newPendingPods(limits, clk),
	}
}
