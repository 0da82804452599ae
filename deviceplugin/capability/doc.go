// Package capability detects what a GPU node can enforce on a container's
// share: the driver and CUDA versions NVML reports, whether the driver
// supports MPS v3 namespaces, whether the node runs cgroup v2 and which
// per-cgroup device-memory accounting backend its kernel offers. The device
// plugin publishes the result in the node inventory (api.Capabilities),
// beside each GPU's MIG mode (from NVML discovery); what each GPU then
// enforces (api.Enforcement) follows from the isolation mode the plugin
// runs and, for MPS v3, from MemoryPartitioning: binding needs the hard
// memory limit on each container's cgroup, which the plugin sets where
// memory partitioning is available: the kernel's dmem controller, or the
// driver's misc backend (cgroup v2 and an MPS v3 driver without dmem),
// whose limits only NVML sets (docs/mps.md).
package capability
