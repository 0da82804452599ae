package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// DefragReport is the defragmentation advisor's plan (allocator.Defrag) on
// a simulated cluster once 100% of its GPU capacity has arrived.
type DefragReport struct {
	Policy string
	Seed   uint64
	// Arrived and Alloc are the arrived demand and the allocation at the
	// cut, in percent of capacity (Alloc is the run's Alloc100).
	Arrived, Alloc float64
	// GPUs is the cluster's GPU count, Pods the GPU pods placed at the cut.
	GPUs, Pods int
	// Elapsed is the advisor's time.
	Elapsed time.Duration
	Plan    *allocator.DefragPlan
}

// Defrag replays cfg's workload exactly as Simulate does (the same
// placements, the same learning policy) up to the pod at which 100% of the
// capacity has arrived, and returns the advisor's dry-run plan on that
// state with the run's policy (its learned fragmentation measure
// included), at most maxMoves moves (0: no bound). The offline reference
// has no online state and is refused.
func Defrag(ctx context.Context, cfg Config, maxMoves int) (*DefragReport, error) {
	if cfg.Policy == PolicyOffline {
		return nil, fmt.Errorf("defrag: the %s reference has no cluster state to advise on", PolicyOffline)
	}
	if cfg.Target <= 0 {
		cfg.Target = 1.3
	}
	capMilli := int64(trace.GPUCount(cfg.Nodes)) * trace.MilliPerGPU
	if capMilli == 0 {
		return nil, fmt.Errorf("defrag: cluster has no GPU")
	}
	work, err := trace.Workload(cfg.Pods, cfg.Seed, int64(cfg.Target*float64(capMilli)))
	if err != nil {
		return nil, fmt.Errorf("defrag: build workload: %w", err)
	}
	var p allocator.Policy
	if cfg.Make != nil {
		p = cfg.Make()
	} else if p, err = NewPolicy(cfg.Policy); err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	s := newState(cfg.Nodes, p, cfg.Seed)
	rec := newPlacementRecorder(s.nodes)
	rep := &DefragReport{Policy: cfg.Policy, Seed: cfg.Seed, GPUs: trace.GPUCount(cfg.Nodes)}
	var pods []allocator.DefragPod
	for i, a := range work {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("defrag: simulation stopped: %w", err)
			}
		}
		if s.place(a.Pod, true) && a.NumGPU > 0 {
			pod, err := rec.placed(fmt.Sprintf("%d/%s", i, a.Name), Request(a.Pod))
			if err != nil {
				return nil, err
			}
			pods = append(pods, pod)
		}
		if a.Cumulative >= capMilli {
			rep.Arrived, rep.Alloc = pct(a.Cumulative, capMilli), pct(s.allocated, capMilli)
			break
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	rep.Pods = len(pods)
	start := time.Now()
	rep.Plan, err = allocator.Defrag(s.nodes, pods, allocator.DefragOptions{Policy: p, MaxMoves: maxMoves})
	if err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// Line is the report's one-line form, named like the RESULT lines.
func (r *DefragReport) Line(traceName string) string {
	p := r.Plan
	return fmt.Sprintf("DEFRAG policy=%s trace=%s seed=%d arrived=%.2f alloc=%.2f gpus=%d pods=%d freed_gpus=%d moved_pods=%d moved_slices=%d free_gpus_before=%d free_gpus_after=%d frag_before=%.2f frag_after=%.2f",
		r.Policy, traceName, r.Seed, r.Arrived, r.Alloc, r.GPUs, r.Pods, p.FreedGPUs, p.MovedPods, p.MovedSlices,
		p.FreeWholeGPUsBefore, p.FreeWholeGPUsAfter, p.FragmentationBefore, p.FragmentationAfter)
}

// placementRecorder finds what the simulator's last placement charged:
// the one node whose GPU usage changed since the last look. The simulator
// keeps no per-pod record (the published protocol never removes pods), so
// the advisor's pods are read off the usage.
type placementRecorder struct {
	nodes []*allocator.Node
	seen  [][]allocator.Units
}

func newPlacementRecorder(nodes []*allocator.Node) *placementRecorder {
	r := &placementRecorder{nodes: nodes, seen: make([][]allocator.Units, len(nodes))}
	for i, n := range nodes {
		r.seen[i] = append([]allocator.Units(nil), n.Used...)
	}
	return r
}

// placed returns the GPU pod just placed, named name, with request req.
func (r *placementRecorder) placed(name string, req *allocator.PodRequest) (allocator.DefragPod, error) {
	for ni, n := range r.nodes {
		var charges []allocator.Charge
		for d := range n.Used {
			if u := n.Used[d].Sub(r.seen[ni][d]); !u.IsZero() {
				charges = append(charges, allocator.Charge{Device: d, Units: u})
				r.seen[ni][d] = n.Used[d]
			}
		}
		if charges != nil {
			return allocator.DefragPod{Name: name, Node: n.Name, Request: req, Charges: charges}, nil
		}
	}
	return allocator.DefragPod{}, fmt.Errorf("defrag: pod %s was placed but no GPU usage changed", name)
}
