// Package allocator owns the pure placement logic of gpuslice: per-GPU
// capacities in integer units (gpu-mem slices, gpu-core units, sharing
// slots), pod requests and their validation, Fit with typed reasons, and the
// placement policies (binpack, spread, and the fragmentation-aware policy)
// behind one Policy interface.
//
// It imports no client-go, no gRPC and no NVML. The scheduler extender, the
// device plugin and the trace simulator all call the same code, and it is
// deterministic: the same node state and request always give the same answer.
//
// Concurrency: a Node is not safe for concurrent mutation; callers (the
// extender's cache) serialise writes. Fit and the policies only read.
package allocator
