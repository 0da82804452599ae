package device

// ContainerDevice is one GPU of a container and the container's share of it.
type ContainerDevice struct {
	// UUID and HostIndex (the NVML index) name the physical GPU.
	UUID      string
	HostIndex int
	// ContainerIndex is the GPU's CUDA index inside the container (its
	// position in the container's CUDA_VISIBLE_DEVICES).
	ContainerIndex int
	// MemLimitMiB is the container's gpu-mem share of this GPU in MiB.
	MemLimitMiB int64
	// ThreadPercentage is the container's gpu-core share of this GPU in
	// percent, 0 when the container has no gpu-core share.
	ThreadPercentage int
}

// Mount is a bind mount for a container.
type Mount struct {
	ContainerPath, HostPath string
	ReadOnly                bool
}

// ContainerEdits are the environment variables and mounts an isolation mode
// adds to a container's Allocate response.
type ContainerEdits struct {
	Envs   map[string]string
	Mounts []Mount
}
