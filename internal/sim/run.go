package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// Point is one point of an allocation curve: the arrived GPU demand and the
// allocated GPU, both in percent of the cluster's GPU capacity.
type Point struct {
	Arrived float64
	Alloc   float64
}

// Run is the outcome of one policy on one seed.
type Run struct {
	Policy string
	Seed   uint64
	// Alloc100 and Alloc130 are the allocation in percent once 100% and
	// 130% (or the workload's target) of the capacity has arrived.
	Alloc100, Alloc130 float64
	// Curve samples the allocation at every CurveStep of arrived demand.
	Curve []Point
	// Pods arrived, placed, skipped (fit nowhere).
	Pods, Placed, Skipped int
	// PlaceTime is the total time spent choosing nodes and GPUs.
	PlaceTime time.Duration
	// Unallocated breaks the GPU left free at the end down, in percent of
	// capacity.
	Unallocated Breakdown
	// Strategy names the offline strategy that gave Alloc130 (offline
	// reference only).
	Strategy string
}

// Breakdown is where the unallocated GPU is at the end of a run.
type Breakdown struct {
	// WholeGPUs is free GPU on wholly free GPUs, PartialGPUs on GPUs that
	// hold some share.
	WholeGPUs, PartialGPUs float64
	// CPUStarved is the part of both on nodes whose free CPU is below the
	// smallest CPU request of the workload's GPU pods.
	CPUStarved float64
}

// PerPod returns the mean placement time per pod.
func (r *Run) PerPod() time.Duration {
	if r.Pods == 0 {
		return 0
	}
	return r.PlaceTime / time.Duration(r.Pods)
}

// Config is one simulation.
type Config struct {
	Nodes []trace.Node
	Pods  []trace.Pod
	Seed  uint64
	// Policy is an allocator policy name, PolicyRandom, PolicyBestFit,
	// PolicyFGDPaper or PolicyOffline.
	Policy string
	// Target is the arrived demand to reach, as a share of the capacity
	// (1.3).
	Target float64
	// CurveStep is the curve's sampling step in percent (1).
	CurveStep float64
	// Make, when set, builds the policy instead of resolving Policy (which
	// then only names the run); for experiments and tests.
	Make func() allocator.Policy
	// Units is the unit mode (UnitsMilli when empty).
	Units Units
}

// NewPolicy resolves a policy name for the simulator: the allocator's
// policies plus the trace baselines.
func NewPolicy(name string) (allocator.Policy, error) {
	switch name {
	case PolicyRandom:
		return Random{}, nil
	case PolicyBestFit:
		return BestFit{}, nil
	}
	p, err := allocator.NewPolicy(name)
	if err != nil {
		return nil, fmt.Errorf("simulator policy: %w", err)
	}
	return p, nil
}

// Simulate runs one policy on one seed's workload.
func Simulate(ctx context.Context, cfg Config) (*Run, error) {
	if cfg.CurveStep <= 0 {
		cfg.CurveStep = 1
	}
	w, err := cfg.workload()
	if err != nil {
		return nil, err
	}
	work, capMilli, um := w.arrivals, w.capMilli, w.units
	if cfg.Policy == PolicyOffline {
		return offline(ctx, cfg, um, work, capMilli)
	}
	s, err := cfg.newState(um)
	if err != nil {
		return nil, err
	}
	run := &Run{Policy: cfg.Policy, Seed: cfg.Seed, Pods: len(work)}
	next := cfg.CurveStep
	hit100 := false
	for i, a := range work {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("simulation stopped: %w", err)
			}
		}
		start := time.Now()
		ok := s.place(a.Pod, true)
		run.PlaceTime += time.Since(start)
		if ok {
			run.Placed++
		} else {
			run.Skipped++
		}
		arrived := pct(a.Cumulative, capMilli)
		alloc := s.allocPct()
		for arrived >= next {
			run.Curve = append(run.Curve, Point{Arrived: next, Alloc: alloc})
			next += cfg.CurveStep
		}
		if !hit100 && a.Cumulative >= capMilli {
			hit100, run.Alloc100 = true, alloc
		}
	}
	run.Alloc130 = s.allocPct()
	if err := s.check(); err != nil {
		return nil, err
	}
	run.Unallocated = s.breakdown(work)
	return run, nil
}

// workload is one seed's arrivals in the published protocol.
type workload struct {
	arrivals []trace.Arrival
	// capMilli is the cluster's GPU capacity in milli-GPU, which the
	// arrived demand is measured against in both unit modes.
	capMilli int64
	units    unitMap
}

// workload builds cfg's arrivals up to its target and
// resolves its unit mode.
func (cfg Config) workload() (workload, error) {
	capMilli := int64(trace.GPUCount(cfg.Nodes)) * trace.MilliPerGPU
	if capMilli == 0 {
		return workload{}, fmt.Errorf("cluster has no GPU")
	}
	work, err := trace.Workload(cfg.Pods, cfg.Seed, int64(cfg.target()*float64(capMilli)))
	if err != nil {
		return workload{}, fmt.Errorf("build workload: %w", err)
	}
	um, err := newUnitMap(cfg.Units)
	if err != nil {
		return workload{}, err
	}
	return workload{arrivals: work, capMilli: capMilli, units: um}, nil
}

// target is the arrived demand to reach, as a share of the capacity.
func (cfg Config) target() float64 {
	if cfg.Target <= 0 {
		return 1.3
	}
	return cfg.Target
}

// newState returns the cluster of cfg's nodes in units um, with cfg's
// policy.
func (cfg Config) newState(um unitMap) (*state, error) {
	if cfg.Make == nil && cfg.Policy == PolicyFGDPaper {
		s, err := newUnitState(cfg.Nodes, um, nil, cfg.Seed)
		if err != nil {
			return nil, err
		}
		s.policy, s.tieRank = paperFGD(s, cfg.Pods), s.rng.Perm(len(s.nodes))
		return s, nil
	}
	p, err := cfg.policy()
	if err != nil {
		return nil, err
	}
	return newUnitState(cfg.Nodes, um, p, cfg.Seed)
}

// policy resolves the configuration's policy (Make first).
func (cfg Config) policy() (allocator.Policy, error) {
	if cfg.Make != nil {
		return cfg.Make(), nil
	}
	return NewPolicy(cfg.Policy)
}

func pct(x, capMilli int64) float64 { return 100 * float64(x) / float64(capMilli) }

// state is the cluster during a simulation.
type state struct {
	nodes  []*allocator.Node
	units  unitMap
	policy allocator.Policy
	rng    *rand.Rand
	// allocated is the GPU charged, in slices; capacity is the cluster's.
	allocated, capacity int64
	ties                []int
	// tieRank, when set, breaks ties between nodes by the lowest rank
	// instead of at random: the FGD paper's simulator prefixes the node
	// names with a random permutation and its patched kube-scheduler
	// picks the first name among equal scores.
	tieRank []int
	fitter  allocator.Fitter
	// reqs caches the pod's request per GPU capacity during one place.
	reqs []capRequest
	// nominal caches nominalCapacity by the pod's models.
	nominal map[string]int64
}

type capRequest struct {
	capacity int64
	req      *allocator.PodRequest
}

// placement is where a pod went: the node's position and what it charged.
type placement struct {
	node    int
	charges []allocator.Charge
	cpu     int64
}

// newState returns a milli-mode cluster state.
func newState(nodes []trace.Node, p allocator.Policy, seed uint64) *state {
	s, _ := newUnitState(nodes, milli, p, seed) // milli capacities never fail
	return s
}

func newUnitState(nodes []trace.Node, um unitMap, p allocator.Policy, seed uint64) (*state, error) {
	ns, err := um.cluster(nodes)
	if err != nil {
		return nil, err
	}
	s := &state{nodes: ns, units: um, policy: p, rng: rand.New(rand.NewPCG(seed, 0x5ca1ab1e))}
	for _, n := range ns {
		for i := range n.Devices {
			s.capacity += n.Devices[i].Capacity.Slices
		}
	}
	return s, nil
}

// allocPct is the allocated GPU in percent of the cluster's: milli-GPU in
// milli mode, GiB of GPU memory in gib mode.
func (s *state) allocPct() float64 { return pct(s.allocated, s.capacity) }

// requestFor returns the pod's request on GPUs of capacity slices.
func (s *state) requestFor(p trace.Pod, capacity int64) *allocator.PodRequest {
	if p.NumGPU == 0 || p.Sharing() {
		capacity = 0 // the same request everywhere
	}
	for _, c := range s.reqs {
		if c.capacity == capacity {
			return c.req
		}
	}
	r := s.units.request(p, capacity)
	s.reqs = append(s.reqs, capRequest{capacity, r})
	return r
}

// observed is the request a learning policy observes for the pod: the
// request on the largest GPU it may use (nominalCapacity; the largest of
// the cluster when no GPU of its models is there).
func (s *state) observed(p trace.Pod) *allocator.PodRequest {
	if p.NumGPU == 0 || p.Sharing() {
		return s.requestFor(p, 0)
	}
	key := strings.Join(p.Models, "|")
	c, ok := s.nominal[key]
	if !ok {
		if c = nominalCapacity(s.nodes, p.Models); c == 0 {
			c = nominalCapacity(s.nodes, nil)
		}
		if s.nominal == nil {
			s.nominal = map[string]int64{}
		}
		s.nominal[key] = c
	}
	return s.requestFor(p, c)
}

// nodeCapacity is the slices of the node's GPUs (trace nodes have one
// model), 0 without GPUs.
func nodeCapacity(n *allocator.Node) int64 {
	if len(n.Devices) == 0 {
		return 0
	}
	return n.Devices[0].Capacity.Slices
}

// place filters and scores every node for the pod as the extender does
// (allocator.Fit, allocator.NodeScore), picks the best node (ties at
// random, as kube-scheduler does) and applies the assignment. observe feeds
// the request to a learning policy first. It reports whether the pod was
// placed.
func (s *state) place(p trace.Pod, observe bool) bool {
	_, ok := s.placeOn(p, observe)
	return ok
}

// placeOn places the pod as place does and returns where it went.
func (s *state) placeOn(p trace.Pod, observe bool) (placement, bool) {
	s.reqs = s.reqs[:0]
	if o, ok := s.policy.(allocator.Observer); ok && observe {
		o.Observe(s.observed(p))
	}
	// Score with the extender's reusable Fitter; its assignments live only
	// until its next call, so the chosen node's is recomputed below (Fit is
	// deterministic).
	found := false
	bestScore := 0.0
	s.ties = s.ties[:0]
	for ni, n := range s.nodes {
		capa := nodeCapacity(n)
		if !mayFit(n, p, s.units.perGPU(p, capa)) {
			continue
		}
		a, st := s.fitter.Fit(n, s.requestFor(p, capa), s.policy)
		if !st.IsSuccess() {
			continue
		}
		sc := s.fitter.NodeScore(s.policy, n, a)
		switch {
		case !found || sc > bestScore:
			found, bestScore = true, sc
			s.ties = append(s.ties[:0], ni)
		case sc == bestScore:
			s.ties = append(s.ties, ni)
		}
	}
	if !found {
		return placement{}, false
	}
	ni := s.ties[0]
	switch {
	case len(s.ties) == 1:
	case s.tieRank != nil:
		for _, t := range s.ties[1:] {
			if s.tieRank[t] < s.tieRank[ni] {
				ni = t
			}
		}
	default:
		ni = s.ties[s.rng.IntN(len(s.ties))]
	}
	n := s.nodes[ni]
	bestA, st := allocator.Fit(n, s.requestFor(p, nodeCapacity(n)), s.policy)
	if !st.IsSuccess() {
		return placement{}, false
	}
	pl := placement{node: ni, charges: bestA.Charges, cpu: p.CPUMilli}
	s.apply(pl, 1)
	return pl, true
}

// apply charges (sign 1) or frees (sign -1) a placement.
func (s *state) apply(pl placement, sign int) {
	n := s.nodes[pl.node]
	n.Apply(pl.charges, sign)
	var slices int64
	for _, c := range pl.charges {
		slices += c.Units.Slices
	}
	n.CPUUsed += int64(sign) * pl.cpu
	s.allocated += int64(sign) * slices
}

// mayFit is a necessary condition for the pod to fit the node (CPU, and
// enough GPUs of an allowed model with the per-GPU share free). It only
// skips nodes that Fit would reject; Fit decides.
func mayFit(n *allocator.Node, p trace.Pod, per int64) bool {
	if p.CPUMilli > n.CPUCapacity-n.CPUUsed {
		return false
	}
	if p.NumGPU == 0 {
		return true
	}
	k := 0
	for i := range n.Devices {
		if n.Free(i).Slices >= per && (len(p.Models) == 0 || contains(p.Models, n.Devices[i].Model)) {
			k++
		}
	}
	return k >= p.NumGPU
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (s *state) breakdown(work []trace.Arrival) Breakdown {
	minCPU := int64(-1)
	for _, a := range work {
		if a.NumGPU > 0 && (minCPU < 0 || a.CPUMilli < minCPU) {
			minCPU = a.CPUMilli
		}
	}
	var whole, partial, starved int64
	for _, n := range s.nodes {
		var free int64
		for i := range n.Devices {
			f := n.Free(i).Slices
			free += f
			if f == n.Devices[i].Capacity.Slices {
				whole += f
			} else {
				partial += f
			}
		}
		if n.CPUCapacity-n.CPUUsed < minCPU {
			starved += free
		}
	}
	return Breakdown{WholeGPUs: pct(whole, s.capacity), PartialGPUs: pct(partial, s.capacity), CPUStarved: pct(starved, s.capacity)}
}

// check verifies that no node is over-committed.
func (s *state) check() error {
	for _, n := range s.nodes {
		if err := n.Overcommitted(); err != nil {
			return fmt.Errorf("simulation broke capacity: %w", err)
		}
		if n.CPUUsed > n.CPUCapacity {
			return fmt.Errorf("simulation broke capacity: node %s cpu %d of %d", n.Name, n.CPUUsed, n.CPUCapacity)
		}
	}
	return nil
}
