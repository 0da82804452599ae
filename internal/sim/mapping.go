package sim

import (
	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// The trace's GPUs map onto gpuslice units as follows in milli mode (see
// units.go for gib mode).
const (
	// SlicesPerGPU: one gpu-mem slice is one milli-GPU of the trace, so a
	// GPU has 1000 slices and a sharing pod asks gpu_milli slices.
	SlicesPerGPU = trace.MilliPerGPU
	// CorePerGPU is the gpu-core capacity; trace pods ask none.
	CorePerGPU = 100
	// SlotsPerGPU is high enough never to bind: a pod asks at least one
	// milli-GPU, so at most 1000 pods share a GPU (in gib mode a GPU has
	// fewer slices than that).
	SlotsPerGPU = trace.MilliPerGPU
)

// milli is the milli-mode unit map.
var milli, _ = newUnitMap(UnitsMilli)

// NewCluster builds allocator nodes from a node list in milli mode: each
// GPU has SlicesPerGPU slices, the node's model, and the node tracks its
// CPU.
func NewCluster(nodes []trace.Node) []*allocator.Node {
	out, _ := milli.cluster(nodes) // milli capacities never fail
	return out
}

// Request maps a trace pod onto a gpuslice pod request in milli mode: one
// container that asks gpu_milli slices on one GPU (a sharing pod) or
// 1000*num_gpu slices over num_gpu GPUs (so every GPU must be wholly free),
// the pod's CPU, and its allowed models. A pod with no GPU gets no GPU
// container: it fits any node with the CPU.
func Request(p trace.Pod) *allocator.PodRequest {
	return milli.request(p, SlicesPerGPU)
}
