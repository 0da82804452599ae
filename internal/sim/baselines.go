package sim

import (
	"math"

	"github.com/gpuslice/gpuslice/allocator"
)

// Baseline policy names (trace benchmark only).
const (
	PolicyRandom  = "random"
	PolicyBestFit = "bestfit"
	PolicyOffline = "offline"
)

// Random scores every GPU and node alike, so the simulator's tie-break
// picks a feasible node uniformly at random and the first fitting GPUs.
type Random struct{}

// Name implements allocator.Policy.
func (Random) Name() string { return PolicyRandom }

// ScoreDevice implements allocator.Policy.
func (Random) ScoreDevice(*allocator.NodeView, int, allocator.Units) float64 { return 0 }

// ScoreNode implements allocator.Policy.
func (Random) ScoreNode(*allocator.NodeView, *allocator.Assignment) float64 { return 0 }

// Best-fit normalisers of the FGD paper's simulator (MaxSpecCpu, and
// MaxSpecGpu = 8000 milli-GPU, i.e. 8 GPUs).
const (
	bestFitMaxCPU  = 128000
	bestFitMaxGPUs = 8
)

// BestFit is the FGD paper's Best-fit baseline: the node with the least
// weighted free CPU and GPU after the pod wins, score
// floor(100*(1 - 0.5*cpuFree/128000 - 0.5*gpuFree/8000)) with ties broken
// at random, and a sharing pod goes on the fitting GPU with the least free
// share. gpuFree/8000 is read as free GPUs / 8: free slices over 8 times the
// node's mean slices per GPU, the same in milli mode and independent of the
// slice size.
type BestFit struct{}

// Name implements allocator.Policy.
func (BestFit) Name() string { return PolicyBestFit }

// ScoreDevice implements allocator.Policy.
func (BestFit) ScoreDevice(v *allocator.NodeView, i int, d allocator.Units) float64 {
	return -float64(v.Free(i).Slices - d.Slices)
}

// ScoreNode implements allocator.Policy.
func (BestFit) ScoreNode(v *allocator.NodeView, a *allocator.Assignment) float64 {
	var gpu, capa int64
	for i := 0; i < v.Len(); i++ {
		gpu += v.Free(i).Slices
		capa += v.Capacity(i).Slices
	}
	for _, c := range a.Charges {
		gpu -= c.Units.Slices
	}
	cpu := max(v.CPUFree()-a.CPUMilli, 0)
	s := 0.5 * float64(cpu) / bestFitMaxCPU
	if capa > 0 {
		// A GPU of the node's mean size; 1000 slices in milli mode.
		perGPU := float64(capa) / float64(v.Len())
		s += 0.5 * float64(gpu) / (bestFitMaxGPUs * perGPU)
	}
	return math.Trunc((1 - s) * 100)
}
