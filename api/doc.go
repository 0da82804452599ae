// Package api owns the contract shared by the gpuslice scheduler extender and
// the gpuslice device plugin: the extended-resource names a pod requests, the
// node GPU inventory the device plugin publishes, and the placement record the
// extender writes on each pod at bind time.
//
// Everything here is plain data plus validation. It imports no client-go, no
// gRPC and no NVML, so both halves (and the pure allocator) can depend on it.
//
// # Resources
//
//   - gpuslice.io/gpu-mem: GPU memory in slices of the cluster-wide slice size
//     (default 1 GiB). The value is the container's total and is split evenly
//     over the container's GPUs.
//   - gpuslice.io/gpu-core: compute share in percent of one GPU (100 per GPU),
//     the container's total, split evenly; optional.
//   - gpuslice.io/gpu-count: how many distinct physical GPUs the container
//     spreads over (default 1). A container takes one sharing slot on each of
//     its GPUs.
//
// # Annotations
//
//   - Node  gpuslice.io/inventory: JSON Inventory, written by the device plugin.
//   - Pod   gpuslice.io/placement: JSON Placement, written by the extender in
//     the same Binding that binds the pod. It is the single source of truth for
//     which GPU shares a pod holds.
//   - Pod   gpuslice.io/gpu-models: optional comma-separated list of GPU models
//     the pod may run on.
package api
