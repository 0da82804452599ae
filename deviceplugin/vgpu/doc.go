// Package vgpu is the node-side core of gpuslice's secure-container modes:
// NVIDIA vGPU over vfio-mdev (pre-Ada GPUs), SR-IOV vGPU (Ada, Hopper,
// Blackwell: virtual functions whose vGPU type the plugin writes) and VFIO
// passthrough of whole GPUs. Everything here works on a sysfs.FS, so it runs
// unchanged against /sys and against the fake tree of deviceplugin/sysfs.
//
// It holds:
//   - the parsers for what the NVIDIA vGPU manager publishes in sysfs
//     (parse.go): mdev type descriptions, SR-IOV creatable type lists and the
//     framebuffer encoded in vGPU type names;
//   - discovery of GPUs, their mdev types and mdevs, virtual functions and
//     IOMMU groups (discover.go, pci.go);
//   - the operations: create and remove an mdev (mdev.go), set and clear a
//     VF's vGPU type (sriov.go), rebind a GPU's IOMMU group to vfio-pci when
//     nothing uses it (passthrough.go);
//   - the admin's declarative per-node sizing (config.go) and the reconcile
//     that makes sysfs match it without touching devices that pods hold,
//     and its report of what it did and could not do (reconcile*.go,
//     report.go);
//   - the rescan diff that notices instances that vanished (health.go);
//   - the pure functions that turn allocated instances into VFIO device
//     nodes and KubeVirt's environment variables (allocate.go);
//   - the device plugin's vgpu isolation mode (--isolation=vgpu): the
//     Discoverer that finds the node's GPUs in sysfs and names them by NVML
//     UUID where NVML sees them, else PCIID (discoverer.go), and the
//     Isolator that reconciles at Start without touching GPUs pods hold,
//     fixes each GPU's instances in a stable order, writes their CDI spec,
//     publishes them (device.WholeInstancer), rescans for vanished ones and
//     turns a container's instance into its edits (isolator.go).
//
// Only the GPUs the sizing config selects for vgpu or passthrough are
// served in that mode. See docs/vgpu.md.
package vgpu
