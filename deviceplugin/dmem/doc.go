// Package dmem owns the kernel-enforced hard device-memory limit of a
// container's cgroup, NVIDIA's MPS v3 memory partitioning ("MPS v3 Memory
// Partitioning"): it reads the cgroup v2 dmem controller's dmem.capacity
// (one "<region> <bytes>" line per device, an NVIDIA GPU's region being
// nvidia/<PCI bus ID>/vidmem), finds a Kubernetes container's cgroup
// directory from its pod UID, QoS class and container ID under both kubelet
// cgroup drivers (systemd and cgroupfs), and sets and reads back the hard
// limit of each of the container's GPUs through a Limiter.
//
// NVIDIA asks that limits be set through NVML (nvmlDeviceSetMemoryLimits_v1)
// or nvidia-smi rather than by writing the dmem files: NVML resolves the
// device, serves both backends (the kernel's dmem controller, and the
// driver's own "misc" accounting on kernels without it) and keeps the soft
// limits' reservations on the ancestors. The device plugin therefore uses
// the NVML Limiter of deviceplugin/nvml. FileLimiter writes dmem.max
// directly; it is right only for the hard limit on the dmem backend (a hard
// limit is not propagated to ancestors), and serves tests and nodes where
// NVML's call is unavailable. gpuslice never sets a soft limit: a soft
// limit raises the ancestors' dmem.min, which the driver lowers only when
// the soft limit is zeroed before the cgroup is removed, and a container's
// cgroup is removed by its runtime without telling the plugin.
//
// The root is configurable (the host's /sys/fs/cgroup as the plugin sees
// it); tests use a fake tree.
package dmem
