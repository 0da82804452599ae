package sim

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// DefragReport is the defragmentation advisor's plan (allocator.Defrag) on
// a simulated cluster once 100% of its GPU capacity has arrived.
type DefragReport struct {
	Policy string
	Seed   uint64
	Units  Units
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
// placements, the same learning policy, either unit mode) up to the pod at
// which 100% of the capacity has arrived, and returns the advisor's dry-run
// plan on that state with the run's policy (its learned fragmentation
// measure included), at most maxMoves moves (0: no bound). A whole-GPU pod
// may only move to GPUs of its own model: in gib mode its request is its
// GPUs' whole memory, which differs between models. The offline reference
// has no online state and is refused.
func Defrag(ctx context.Context, cfg Config, maxMoves int) (*DefragReport, error) {
	if cfg.Policy == PolicyOffline {
		return nil, fmt.Errorf("defrag: the %s reference has no cluster state to advise on", PolicyOffline)
	}
	w, err := cfg.workload()
	if err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	s, err := cfg.newState(w.units)
	if err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	rep := &DefragReport{Policy: cfg.Policy, Seed: cfg.Seed, Units: w.units.name, GPUs: trace.GPUCount(cfg.Nodes)}
	var pods []allocator.DefragPod
	for i, a := range w.arrivals {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("defrag: simulation stopped: %w", err)
			}
		}
		if pl, ok := s.placeOn(a.Pod, true); ok && a.NumGPU > 0 {
			pods = append(pods, s.defragPod(fmt.Sprintf("%d/%s", i, a.Name), a.Pod, pl))
		}
		if a.Cumulative >= w.capMilli {
			rep.Arrived, rep.Alloc = pct(a.Cumulative, w.capMilli), s.allocPct()
			break
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	rep.Pods = len(pods)
	start := time.Now()
	rep.Plan, err = allocator.Defrag(s.nodes, pods, allocator.DefragOptions{Policy: s.policy, MaxMoves: maxMoves})
	if err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// defragPod is the advisor's view of a pod the state placed at pl: its
// charges, and the request a move re-fits (a whole-GPU pod's narrowed to
// its node's model).
func (s *state) defragPod(name string, p trace.Pod, pl placement) allocator.DefragPod {
	n := s.nodes[pl.node]
	req := s.units.request(p, nodeCapacity(n))
	if !p.Sharing() && len(n.Devices) > 0 {
		req.Models = []string{n.Devices[0].Model}
	}
	return allocator.DefragPod{Name: name, Node: n.Name, Request: req, Charges: pl.charges}
}

// Line is the report's one-line form, named like the RESULT lines.
func (r *DefragReport) Line(traceName string) string {
	p := r.Plan
	return fmt.Sprintf("DEFRAG policy=%s trace=%s units=%s seed=%d arrived=%.2f alloc=%.2f gpus=%d pods=%d freed_gpus=%d moved_pods=%d moved_slices=%d free_gpus_before=%d free_gpus_after=%d frag_before=%.2f frag_after=%.2f",
		r.Policy, traceName, r.Units, r.Seed, r.Arrived, r.Alloc, r.GPUs, r.Pods, p.FreedGPUs, p.MovedPods, p.MovedSlices,
		p.FreeWholeGPUsBefore, p.FreeWholeGPUsAfter, p.FragmentationBefore, p.FragmentationAfter)
}

// defragMain runs the defrag mode of the command: the advisor on every
// policy and seed (the offline reference is left out), one DEFRAG line per
// run.
func defragMain(ctx context.Context, o CLIOptions, nodes []trace.Node, pods []trace.Pod, w io.Writer) error {
	name := filepath.Base(o.Trace)
	var pols []string
	for _, p := range o.Policies {
		if p != PolicyOffline {
			pols = append(pols, p)
		}
	}
	if !o.Quiet {
		fmt.Fprintf(w, "trace %s (defrag at 100%% arrived): %d pods; cluster: %d nodes, %d GPUs; units %s; seeds %v; policies %v\n",
			name, len(pods), len(nodes), trace.GPUCount(nodes), o.Units, o.Seeds, pols)
	}
	bo := Options{Nodes: nodes, Pods: pods, Policies: pols, Seeds: o.Seeds, Units: o.Units, Parallel: o.Parallel}
	runs, err := runGrid(bo, func(cfg Config) (*DefragReport, error) { return Defrag(ctx, cfg, o.MaxMoves) }, nil)
	if err != nil {
		return err
	}
	for _, r := range runs {
		fmt.Fprintln(w, r.Line(name))
	}
	return nil
}
