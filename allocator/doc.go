// Package allocator owns the pure placement logic of gpuslice: per-GPU
// capacities and usage of a node (Node, with placeholders for GPUs that
// vanished while pods hold shares on them), Fit with typed reasons (Status,
// whose numbers are formatted only by Message), the assignment of a pod's
// containers to GPUs and its conversion to and from the placement record,
// the placement policies (binpack, spread, and the fragmentation-aware
// policies) behind one Policy interface, and the defragmentation advisor
// (Defrag: a dry-run plan of pod moves, each a Fit on the state the earlier
// ones left, that frees the most whole GPUs; docs/defrag.md).
//
// The request model (api.PodRequest), the per-GPU units (api.Units) and the
// per-GPU charge rule (api.PodCharge) are the contract's, in package api;
// this package uses them and aliases the first two.
//
// Isolation modes: Fit keeps a pod on GPUs of the modes its sandbox allows
// (api.IsolationAllowed: a pod that runs containers on shared modes only, a
// VM pod on GPUs of its own vgpu or passthrough mode only). On a vgpu or
// passthrough GPU a container's share must fit one instance (Device.Instance)
// and is charged the whole instance: Device.Charge is the one place that
// turns a share into what a device charges for it, and Fit, the charges of
// an assignment (also one rebuilt from a placement record, which keeps the
// share asked) and the policies' scores all go through it.
//
// It imports no client-go, no gRPC and no NVML. The scheduler extender, the
// trace simulator and the tests all call the same code, and it is
// deterministic: the same node state and request always give the same answer.
//
// Concurrency: a Node is not safe for concurrent mutation; callers (the
// extender's cache) serialise writes. Fit and the policies only read.
package allocator
