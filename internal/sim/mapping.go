package sim

import (
	"fmt"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// The trace's GPUs map onto gpuslice units as follows.
const (
	// SlicesPerGPU: one gpu-mem slice is one milli-GPU of the trace, so a
	// GPU has 1000 slices and a sharing pod asks gpu_milli slices.
	SlicesPerGPU = trace.MilliPerGPU
	// CorePerGPU is the gpu-core capacity; trace pods ask none.
	CorePerGPU = 100
	// SlotsPerGPU is high enough never to bind: a pod asks at least one
	// milli-GPU, so at most 1000 pods share a GPU.
	SlotsPerGPU = trace.MilliPerGPU
)

// NewCluster builds allocator nodes from a node list: each GPU has
// SlicesPerGPU slices, the node's model, and the node tracks its CPU.
func NewCluster(nodes []trace.Node) []*allocator.Node {
	out := make([]*allocator.Node, len(nodes))
	for i, tn := range nodes {
		devs := make([]allocator.Device, tn.GPUs)
		for g := range devs {
			devs[g] = allocator.Device{
				Index:    g,
				UUID:     fmt.Sprintf("%s-gpu%d", tn.Name, g),
				Model:    tn.Model,
				Capacity: allocator.Units{Slices: SlicesPerGPU, Core: CorePerGPU, Slots: SlotsPerGPU},
				Healthy:  true,
			}
		}
		n := allocator.NewNode(tn.Name, devs)
		n.CPUCapacity = tn.CPUMilli
		out[i] = n
	}
	return out
}

// Request maps a trace pod onto a gpuslice pod request: one container that
// asks gpu_milli slices on one GPU (a sharing pod) or 1000*num_gpu slices
// over num_gpu GPUs (so every GPU must be wholly free), the pod's CPU, and
// its allowed models. A pod with no GPU gets no GPU container: it fits any
// node with the CPU.
func Request(p trace.Pod) *allocator.PodRequest {
	r := &allocator.PodRequest{CPUMilli: p.CPUMilli, Models: p.Models}
	if p.NumGPU > 0 {
		r.Containers = []allocator.ContainerRequest{{Name: "main", Slices: p.GPUDemand(), Count: int64(p.NumGPU)}}
	}
	return r
}
