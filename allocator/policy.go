package allocator

import (
	"fmt"
	"sort"
)

// Policy chooses among GPUs on a node and among nodes. Implementations are
// stateless or internally synchronised, and deterministic.
type Policy interface {
	// Name is the policy's configuration name.
	Name() string
	// ScoreDevice rates putting per-GPU demand d on device position i of
	// the view (d fits). d is what the container is charged there
	// (Device.Charge of its share: a whole instance on vgpu and
	// passthrough GPUs). Higher is better.
	ScoreDevice(v *NodeView, i int, d Units) float64
	// ScoreNode rates a node for a pod given the pod's assignment there; v is
	// the view before the assignment. Higher is better; only the order among
	// nodes for the same pod matters.
	ScoreNode(v *NodeView, a *Assignment) float64
}

// SetScorer is optionally implemented by a policy that rates a whole set of
// GPUs for one multi-GPU container rather than summing ScoreDevice. d is
// the container's per-GPU share; what it costs on each device of the set
// is Device.Charge(d).
type SetScorer interface {
	ScoreSet(v *NodeView, set []int, d Units) float64
}

// Observer is optionally implemented by a policy that learns from the
// requests it sees (the fragmentation-aware policy's workload histogram).
type Observer interface {
	Observe(r *PodRequest)
}

// Policy names.
const (
	PolicyBinpack = "binpack"
	PolicySpread  = "spread"
)

// policies maps a name to its constructor. It is read-only after init.
var policies = map[string]func() Policy{
	PolicyBinpack: func() Policy { return Binpack{} },
	PolicySpread:  func() Policy { return Spread{} },
	// The fragmentation-aware policies learn from the requests they observe,
	// so each call returns a fresh instance with its own histogram.
	PolicyFGD:      func() Policy { return NewFGD(PolicyFGD, FGDPublishedConfig()) },
	PolicyGpuslice: func() Policy { return NewFGD(PolicyGpuslice, GpusliceConfig()) },
}

// Rev is a policy's revision: what it decides from besides the node and
// the request. While a policy's Rev is unchanged (==) it decides a request
// on an unchanged node the same way every time.
type Rev struct {
	// Of is the instance that keeps the state (a pointer, so comparable),
	// nil for a policy that keeps none.
	Of any
	// Seq numbers the instance's published states from 1, one more with
	// each: of two Revs of one instance the larger Seq is the later state,
	// and the difference is how many states it published in between.
	Seq uint64
}

// Revisioned is implemented by a policy whose decisions depend on state it
// keeps (the fragmentation-aware policies' learned workload).
type Revisioned interface {
	Revision() Rev
}

// Revision returns p's revision, and whether p's fit is a function of the
// node, the request and the revision, so that a caller may reuse a fit
// while all three are unchanged (scheduler/cache does, across filter
// calls). Binpack and Spread decide from the node and the request alone
// (the zero Rev); a Revisioned policy returns its Revision; any other
// policy is not reusable.
func Revision(p Policy) (rev Rev, reusable bool) {
	switch p := p.(type) {
	case Binpack, Spread:
		return Rev{}, true
	case Revisioned:
		return p.Revision(), true
	}
	return Rev{}, false
}

// PolicyNames returns the known policy names, sorted.
func PolicyNames() []string {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewPolicy resolves a policy by name. Call it once at start-up.
func NewPolicy(name string) (Policy, error) {
	if name == "" {
		name = PolicyBinpack
	}
	mk, ok := policies[name]
	if !ok {
		return nil, fmt.Errorf("unknown placement policy %q (known: %v)", name, PolicyNames())
	}
	return mk(), nil
}

// leftover returns the free fraction of device i after taking d, weighing
// memory first and compute second.
func leftover(v *NodeView, i int, d Units) float64 {
	f, c := v.Free(i).Sub(d), v.Capacity(i)
	var x float64
	if c.Slices > 0 {
		x += float64(f.Slices) / float64(c.Slices)
	}
	if c.Core > 0 {
		x += 0.25 * float64(f.Core) / float64(c.Core)
	}
	return x
}

// nodeFreeFraction returns the free share of the node's gpu-mem after the
// assignment.
func nodeFreeFraction(v *NodeView, a *Assignment) float64 {
	var free, capa int64
	for i := 0; i < v.Len(); i++ {
		free += v.Free(i).Slices
		capa += v.Capacity(i).Slices
	}
	if capa == 0 {
		return 0
	}
	for _, c := range a.Charges {
		free -= c.Units.Slices
	}
	return float64(free) / float64(capa)
}

// Binpack packs: the GPU and the node with the least leftover win. It keeps
// whole GPUs and whole nodes free for large requests.
type Binpack struct{}

// Name implements Policy.
func (Binpack) Name() string { return PolicyBinpack }

// ScoreDevice implements Policy.
func (Binpack) ScoreDevice(v *NodeView, i int, d Units) float64 { return -leftover(v, i, d) }

// ScoreNode implements Policy.
func (Binpack) ScoreNode(v *NodeView, a *Assignment) float64 { return -nodeFreeFraction(v, a) }

// Spread balances: the GPU and the node with the most leftover win. It
// lowers contention at the cost of fragmentation.
type Spread struct{}

// Name implements Policy.
func (Spread) Name() string { return PolicySpread }

// ScoreDevice implements Policy.
func (Spread) ScoreDevice(v *NodeView, i int, d Units) float64 { return leftover(v, i, d) }

// ScoreNode implements Policy.
func (Spread) ScoreNode(v *NodeView, a *Assignment) float64 { return nodeFreeFraction(v, a) }
