// Package allocator owns the pure placement logic of gpuslice: per-GPU
// capacities and usage of a node (Node, with placeholders for GPUs that
// vanished while pods hold shares on them), Fit with typed reasons (Status,
// whose numbers are formatted only by Message), the assignment of a pod's
// containers to GPUs and its conversion to and from the placement record,
// and the placement policies (binpack, spread, and the fragmentation-aware
// policies) behind one Policy interface.
//
// The request model (api.PodRequest), the per-GPU units (api.Units) and the
// per-GPU charge rule (api.PodCharge) are the contract's, in package api;
// this package uses them and aliases the first two.
//
// It imports no client-go, no gRPC and no NVML. The scheduler extender, the
// trace simulator and the tests all call the same code, and it is
// deterministic: the same node state and request always give the same answer.
//
// Concurrency: a Node is not safe for concurrent mutation; callers (the
// extender's cache) serialise writes. Fit and the policies only read.
package allocator
