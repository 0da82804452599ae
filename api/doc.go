// Package api owns the contract shared by the gpuslice scheduler extender
// and the gpuslice device plugin, and states each of its rules once:
//
//   - the extended-resource names a pod requests, and the one parser of a
//     container's request with its whole-number and bound checks
//     (ParsePodRequest, ParseContainerRequest, Quantity; request.go, pod.go);
//   - the per-GPU charge rule: app containers add up, sidecars hold their
//     share for the pod's life, regular init containers run one at a time
//     (PodCharge; charge.go);
//   - the terminal-pod check (IsTerminal);
//   - the node GPU inventory the device plugin publishes, with its bounds
//     (Inventory; inventory.go);
//   - the placement record the extender writes at bind time, which the
//     device plugin also writes as the allocation record (Placement,
//     Allocation; placement.go);
//   - the per-GPU amounts, each in its own unit (Units; units.go).
//
// Everything here is plain data, validation and pure functions. It reads
// core/v1 pod types but imports no client-go, no gRPC and no NVML, so both
// halves (and the pure allocator) can depend on it.
//
// # Resources
//
//   - gpuslice.io/gpu-mem: GPU memory in slices of the cluster-wide slice
//     size (default 1 GiB). The value is the container's total and is split
//     evenly over the container's GPUs.
//   - gpuslice.io/gpu-core: compute share in gpu-core units (100 per GPU),
//     the container's total, split evenly; optional.
//   - gpuslice.io/gpu-count: how many distinct physical GPUs the container
//     spreads over (default 1). A container takes one sharing slot on each of
//     its GPUs.
//
// # Annotations
//
// Golden examples of each JSON annotation are in testdata/.
//
//   - Node gpuslice.io/inventory: JSON Inventory, written by the device
//     plugin.
//   - Pod gpuslice.io/placement: JSON Placement, written by the extender in
//     the same Binding that binds the pod, and rewritten by the device
//     plugin's reconcile. It is the single source of truth for which GPU
//     shares a pod holds.
//   - Pod gpuslice.io/allocated: JSON Allocation (the placement's record),
//     written by the device plugin once kubelet has allocated the pod.
//   - Pod gpuslice.io/gpu-models: optional comma-separated list of GPU
//     models the pod may run on; the only one a user may set.
package api
