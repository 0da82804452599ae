package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	// Policy is an allocator policy name, PolicyRandom, PolicyBestFit or
	// PolicyOffline.
	Policy string
	// Target is the arrived demand to reach, as a share of the capacity
	// (1.3).
	Target float64
	// CurveStep is the curve's sampling step in percent (1).
	CurveStep float64
	// Make, when set, builds the policy instead of resolving Policy (which
	// then only names the run); for experiments and tests.
	Make func() allocator.Policy
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
	if cfg.Target <= 0 {
		cfg.Target = 1.3
	}
	if cfg.CurveStep <= 0 {
		cfg.CurveStep = 1
	}
	capMilli := int64(trace.GPUCount(cfg.Nodes)) * trace.MilliPerGPU
	if capMilli == 0 {
		return nil, fmt.Errorf("cluster has no GPU")
	}
	work, err := trace.Workload(cfg.Pods, cfg.Seed, int64(cfg.Target*float64(capMilli)))
	if err != nil {
		return nil, fmt.Errorf("build workload: %w", err)
	}
	if cfg.Policy == PolicyOffline {
		return offline(ctx, cfg, work, capMilli)
	}
	var p allocator.Policy
	if cfg.Make != nil {
		p = cfg.Make()
	} else if p, err = NewPolicy(cfg.Policy); err != nil {
		return nil, err
	}
	s := newState(cfg.Nodes, p, cfg.Seed)
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
		alloc := pct(s.allocated, capMilli)
		for arrived >= next {
			run.Curve = append(run.Curve, Point{Arrived: next, Alloc: alloc})
			next += cfg.CurveStep
		}
		if !hit100 && a.Cumulative >= capMilli {
			hit100, run.Alloc100 = true, alloc
		}
	}
	run.Alloc130 = pct(s.allocated, capMilli)
	if err := s.check(); err != nil {
		return nil, err
	}
	run.Unallocated = s.breakdown(work, capMilli)
	return run, nil
}

func pct(x, capMilli int64) float64 { return 100 * float64(x) / float64(capMilli) }

// state is the cluster during a simulation.
type state struct {
	nodes     []*allocator.Node
	policy    allocator.Policy
	rng       *rand.Rand
	allocated int64
	ties      []int
	fitter    allocator.Fitter
}

func newState(nodes []trace.Node, p allocator.Policy, seed uint64) *state {
	return &state{nodes: NewCluster(nodes), policy: p, rng: rand.New(rand.NewPCG(seed, 0x5ca1ab1e))}
}

// place filters and scores every node for the pod as the extender does
// (allocator.Fit, allocator.NodeScore), picks the best node (ties at
// random, as kube-scheduler does) and applies the assignment. observe feeds
// the request to a learning policy first. It reports whether the pod was
// placed.
func (s *state) place(p trace.Pod, observe bool) bool {
	req := Request(p)
	if o, ok := s.policy.(allocator.Observer); ok && observe {
		o.Observe(req)
	}
	// Score with the extender's reusable Fitter; its assignments live only
	// until its next call, so the chosen node's is recomputed below (Fit is
	// deterministic).
	found := false
	bestScore := 0.0
	s.ties = s.ties[:0]
	for ni, n := range s.nodes {
		if !mayFit(n, p) {
			continue
		}
		a, st := s.fitter.Fit(n, req, s.policy)
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
		return false
	}
	ni := s.ties[0]
	if len(s.ties) > 1 {
		ni = s.ties[s.rng.IntN(len(s.ties))]
	}
	bestA, st := allocator.Fit(s.nodes[ni], req, s.policy)
	if !st.IsSuccess() {
		return false
	}
	n := s.nodes[ni]
	n.Apply(bestA.Charges, 1)
	n.CPUUsed += p.CPUMilli
	s.allocated += p.GPUDemand()
	return true
}

// mayFit is a necessary condition for the pod to fit the node (CPU, and
// enough GPUs of an allowed model with the per-GPU share free). It only
// skips nodes that Fit would reject; Fit decides.
func mayFit(n *allocator.Node, p trace.Pod) bool {
	if p.CPUMilli > n.CPUCapacity-n.CPUUsed {
		return false
	}
	if p.NumGPU == 0 {
		return true
	}
	per := p.GPUMilli
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

func (s *state) breakdown(work []trace.Arrival, capMilli int64) Breakdown {
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
	return Breakdown{WholeGPUs: pct(whole, capMilli), PartialGPUs: pct(partial, capMilli), CPUStarved: pct(starved, capMilli)}
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
