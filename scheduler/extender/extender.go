package extender

import (
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
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

	// filtered remembers the request of each pod filtered recently, by UID,
	// so bind uses the pod that was filtered (not a namesake) without an
	// API call. It has its own internal lock.
	filtered *gocache.Cache
	// memo holds the node scores computed in the last filter.
	memo atomic.Pointer[scoreMemo]
	// observed dedupes the policy's online learning by pod UID.
	observedMu sync.Mutex
	observed   map[types.UID]struct{}
}

// filteredPod is what filter learned about a pod.
type filteredPod struct {
	namespace, name string
	req             *allocator.PodRequest
	policy          allocator.Policy
}

// nodeResult is the outcome of fitting a pod on one node.
type nodeResult struct {
	code  allocator.Code
	score float64
	msg   string
}

// fitNode fits the request on a node of the cache's view.
func fitNode(f *allocator.Fitter, pol allocator.Policy, v cache.View, name string, req *allocator.PodRequest) nodeResult {
	n, reason := v.Node(name)
	if n == nil {
		return nodeResult{code: allocator.UnschedulableAndUnresolvable, msg: reason}
	}
	a, st := f.Fit(n, req, pol)
	if !st.IsSuccess() {
		return nodeResult{code: st.Code, msg: st.Message()}
	}
	return nodeResult{code: allocator.Success, score: f.NodeScore(pol, n, a)}
}

// NewExtender wires an extender. pods may be nil (bind then relies on the
// pods seen in filter only).
func NewExtender(c *cache.Cache, policies *Policies, client kubernetes.Interface, pods corelisters.PodLister, clk clock.PassiveClock) *Extender {
	return &Extender{
		cache:    c,
		policies: policies,
		client:   client,
		pods:     pods,
		clock:    clk,
		filtered: gocache.New(10*time.Minute, 5*time.Minute),
		observed: map[types.UID]struct{}{},
	}
}
