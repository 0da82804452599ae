package extender

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
)

// PendingLimits bound what the extender remembers of the pods it filtered,
// from filter until bind. Bind accepts only a (pod UID, node) pair that a
// remembered filter found feasible, so an entry dropped by these limits
// makes its bind fail; kube-scheduler then retries the pod (filter again).
type PendingLimits struct {
	// TTL is how long a filter's outcome stays valid for bind.
	TTL time.Duration
	// MaxPods is the most pods remembered; the oldest filter is dropped
	// first.
	MaxPods int
	// MaxNodes is the most feasible node names remembered over all pods
	// (the memory bound: each costs a name and a score).
	MaxNodes int
}

// DefaultPendingLimits returns the default limits. Kube-scheduler binds right after it filters, so
// entries are short-lived. 2,000,000 node entries (about 100 MiB at 50 bytes
// each) hold 130 pods found feasible on every node of a 15,000-node cluster
// at once, and far more in the usual case of a few feasible nodes.
func DefaultPendingLimits() PendingLimits {
	return PendingLimits{TTL: 5 * time.Minute, MaxPods: 20000, MaxNodes: 2000000}
}

// pendingPod is what filter learned about a pod. It is not modified once
// put (a new filter puts a new one), so readers need no lock.
type pendingPod struct {
	uid             types.UID
	namespace, name string
	// req is the pod's gpuslice request; it has no GPU for pods that
	// request none.
	req    *allocator.PodRequest
	policy allocator.Policy
	// nodes are the nodes filter found feasible, in filter's order;
	// scores[i] is the policy's raw score of nodes[i] (nil for a pod that
	// requests no GPU).
	nodes  []string
	scores []float64
	// observed: the policy has learned this pod's request already.
	observed bool

	filteredAt time.Time
	elem       *list.Element
}

// feasible reports whether filter kept node for the pod.
func (p *pendingPod) feasible(node string) bool { return slices.Contains(p.nodes, node) }

// lookup returns the pod's scores for names when filter kept exactly those
// nodes in that order (what kube-scheduler sends after filter), else a map
// from node to score.
func (p *pendingPod) lookup(names []string) ([]float64, map[string]float64) {
	if slices.Equal(names, p.nodes) {
		return p.scores, nil
	}
	byName := make(map[string]float64, len(p.nodes))
	for i, n := range p.nodes {
		byName[n] = p.scores[i]
	}
	return nil, byName
}

// pendingPods is the UID-keyed memory of filtered pods, bounded by
// PendingLimits and expiring on an injected clock. It replaces three
// private caches: the filtered requests bind used, the score memo
// prioritize used, and the set of pods the policy learned from. It is safe
// for concurrent use.
type pendingPods struct {
	limits PendingLimits
	clock  clock.PassiveClock

	mu    sync.Mutex
	byUID map[types.UID]*pendingPod
	order *list.List // of *pendingPod, oldest filter first
	nodes int        // sum of len(nodes) over byUID
}

func newPendingPods(limits PendingLimits, clk clock.PassiveClock) *pendingPods {
	return &pendingPods{limits: limits, clock: clk, byUID: map[types.UID]*pendingPod{}, order: list.New()}
}

// put stores p (replacing an earlier filter of the same pod) and drops the
// oldest entries beyond the limits. The newest entry is always kept.
func (s *pendingPods) put(p *pendingPod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.expireLocked(now)
	if old, ok := s.byUID[p.uid]; ok {
		s.removeLocked(old)
	}
	p.filteredAt = now
	p.elem = s.order.PushBack(p)
	s.byUID[p.uid] = p
	s.nodes += len(p.nodes)
	for s.order.Len() > 1 && (s.order.Len() > s.limits.MaxPods || s.nodes > s.limits.MaxNodes) {
		s.removeLocked(s.order.Front().Value.(*pendingPod))
	}
}

// get returns the pod's last filter if it has not expired.
func (s *pendingPods) get(uid types.UID) (*pendingPod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.clock.Now())
	p, ok := s.byUID[uid]
	return p, ok
}

// remove forgets a pod (it was bound).
func (s *pendingPods) remove(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.byUID[uid]; ok {
		s.removeLocked(p)
	}
}

// size returns the number of pods and node entries held.
func (s *pendingPods) size() (pods, nodes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byUID), s.nodes
}

func (s *pendingPods) expireLocked(now time.Time) {
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		p := e.Value.(*pendingPod)
		if now.Sub(p.filteredAt) < s.limits.TTL {
			return
		}
		s.removeLocked(p)
	}
}

func (s *pendingPods) removeLocked(p *pendingPod) {
	s.order.Remove(p.elem)
	delete(s.byUID, p.uid)
	s.nodes -= len(p.nodes)
}
