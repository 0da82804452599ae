package device

import "github.com/gpuslice/gpuslice/api"

// GPU is what discovery learns about one physical GPU.
type GPU struct {
	// Index is the host (NVML) index.
	Index int
	// UUID is the NVML UUID, e.g. GPU-5fd2...
	UUID  string
	Model string
	// MemoryMiB is the total memory.
	MemoryMiB int64
	// PCIBusID in sysfs form, lower case: "0000:07:00.0".
	PCIBusID string
	// NUMANode is -1 when unknown.
	NUMANode int
	// Minor is the /dev/nvidia<Minor> device number.
	Minor int
	// Major and MinorCC are the CUDA compute capability (Volta is 7.0).
	Major, MinorCC int
	// MIGEnabled says MIG mode is on; gpuslice does not share such a GPU.
	MIGEnabled bool
	// MIGCapable says the GPU supports MIG (NVML reports a MIG mode).
	MIGCapable bool
	// Links to every other discovered GPU (by Index), best first per peer.
	Links []api.Link
}

// HealthEvent is a change of one GPU's health as one source sees it.
type HealthEvent struct {
	UUID    string
	Healthy bool
	// Reason says why the GPU is unhealthy (and, for a shared fault, which
	// GPUs share it).
	Reason string
}
