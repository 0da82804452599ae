package sim

import (
	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// PolicyFGDPaper is FGD as the paper's simulator runs it (trace benchmark
// only, since it knows the workload in advance): the typical classes are
// computed once from the whole pod list, before any pod is placed (the
// most frequent classes covering 95% of its pods, CPU-only pods included:
// the simulator's default TypicalPodsConfig), and never change; nodes and
// GPUs score as its FGDScore plugin does (allocator.FGDConfig.Quantised),
// ties between nodes at random. The registered allocator.PolicyFGD learns
// the classes online instead.
const PolicyFGDPaper = "fgd-paper"

// paperCoverage is the paper's podPopularityThreshold (95%).
const paperCoverage = 0.95

// paperFGD returns PolicyFGDPaper for the pod list on s's cluster: each
// pod's class is the one the online policies observe for it (state.observed).
func paperFGD(s *state, pods []trace.Pod) allocator.Policy {
	seed := make([]allocator.WeightedClass, 0, len(pods))
	for _, p := range pods {
		s.reqs = s.reqs[:0] // observed caches by capacity per pod
		seed = append(seed, allocator.WeightedClass{Class: allocator.ClassOf(s.observed(p)), Weight: 1})
	}
	s.reqs = s.reqs[:0]
	return allocator.NewFGD(PolicyFGDPaper, allocator.FGDConfig{
		Seed: seed, Coverage: paperCoverage, Fixed: true, Quantised: true,
	})
}
