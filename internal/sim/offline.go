package sim

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// offlineChecks are the arrived-demand checkpoints (percent of capacity,
// up to the target) of the offline reference's curve; the costly strategies
// run only at the target.
func offlineChecks() []float64 { return []float64{50, 80, 90, 100, 110, 120} }

// offlineStrategy places a known set of pods.
type offlineStrategy struct {
	name string
	// full marks the costly strategies, run only at the target.
	full  bool
	order func([]trace.Pod)
	// make builds the policy; observe is the request it learns of a pod.
	make func(pods []trace.Pod, observe func(trace.Pod) *allocator.PodRequest) allocator.Policy
}

func offlineStrategies() []offlineStrategy {
	return []offlineStrategy{
		// Best-fit decreasing.
		{name: "bfd", order: sortDecreasing, make: func([]trace.Pod, func(trace.Pod) *allocator.PodRequest) allocator.Policy { return BestFit{} }},
		// gpuslice's policy knowing the exact class mix of all the pods in
		// advance (no decay), largest first.
		{name: "known-mix-decreasing", full: true, order: sortDecreasing, make: knownMix},
	}
}

func knownMix(pods []trace.Pod, observe func(trace.Pod) *allocator.PodRequest) allocator.Policy {
	cfg := allocator.GpusliceConfig()
	cfg.HalfLife = math.Inf(1)
	cfg.Seed = []allocator.WeightedClass{}
	f := allocator.NewFGD(PolicyOffline, cfg)
	for _, p := range pods {
		f.Observe(observe(p))
	}
	return f
}

// offline is the offline reference: for each checkpoint it takes the pods
// that have arrived by then and places them knowing all of them in advance,
// with each offline strategy through the same allocator code, and keeps the
// best. It is a reference an online policy can approach, not a proven
// optimum.
func offline(ctx context.Context, cfg Config, um unitMap, work []trace.Arrival, capMilli int64) (*Run, error) {
	run := &Run{Policy: PolicyOffline, Seed: cfg.Seed, Pods: len(work)}
	target := 100 * cfg.target()
	var checks []float64
	for _, c := range offlineChecks() {
		if c < target {
			checks = append(checks, c)
		}
	}
	checks = append(checks, target)
	for _, c := range checks {
		// The prefix includes the pod that crosses the checkpoint, as the
		// online runs measure after it.
		end := len(work)
		for i, a := range work {
			if pct(a.Cumulative, capMilli) >= c {
				end = i + 1
				break
			}
		}
		best := -1.0
		for _, st := range offlineStrategies() {
			if st.full && c != target {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("offline reference stopped: %w", err)
			}
			pods := make([]trace.Pod, end)
			for i := range pods {
				pods[i] = work[i].Pod
			}
			st.order(pods)
			s, err := newUnitState(cfg.Nodes, um, nil, cfg.Seed)
			if err != nil {
				return nil, err
			}
			s.policy = st.make(pods, func(p trace.Pod) *allocator.PodRequest {
				s.reqs = s.reqs[:0]
				return s.observed(p)
			})
			start := time.Now()
			placed := 0
			for _, p := range pods {
				if s.place(p, false) {
					placed++
				}
			}
			elapsed := time.Since(start)
			if err := s.check(); err != nil {
				return nil, err
			}
			alloc := s.allocPct()
			if alloc > best {
				best = alloc
				if c == target {
					run.Placed, run.Skipped = placed, len(pods)-placed
					run.Unallocated = s.breakdown(work[:end])
					run.Strategy = st.name
				}
			}
			if c == target {
				run.PlaceTime += elapsed
			}
		}
		run.Curve = append(run.Curve, Point{Arrived: pct(work[end-1].Cumulative, capMilli), Alloc: best})
		if c == 100 {
			run.Alloc100 = best
		}
		if c == target {
			run.Alloc130 = best
		}
	}
	return run, nil
}

// sortDecreasing orders pods largest GPU demand first: multi-GPU pods by
// GPU count, then sharing pods by share, then CPU-only pods; CPU breaks
// ties, largest first.
func sortDecreasing(pods []trace.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if a.NumGPU != b.NumGPU {
			if a.NumGPU == 0 || b.NumGPU == 0 {
				return b.NumGPU == 0
			}
			return a.NumGPU > b.NumGPU
		}
		if a.GPUMilli != b.GPUMilli {
			return a.GPUMilli > b.GPUMilli
		}
		return a.CPUMilli > b.CPUMilli
	})
}
