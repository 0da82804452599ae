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
	// Instance is the index of the instance the container holds on a GPU
	// of a whole-instance mode (api.IsolationMode.WholeInstance): its
	// gpu-mem device IDs are the instance's range (see WholeInstancer). 0
	// on GPUs of shared modes.
	Instance int
}

// Mount is a bind mount for a container.
type Mount struct {
	ContainerPath, HostPath string
	ReadOnly                bool
}

// DeviceNode is a device node for a container (kubelet's DeviceSpec).
type DeviceNode struct {
	ContainerPath, HostPath string
	// Permissions are cgroup device permissions, a subset of "rwm".
	Permissions string
}

// ContainerEdits are the environment variables, mounts, device nodes and
// CDI devices an isolation mode adds to a container's Allocate response.
type ContainerEdits struct {
	Envs    map[string]string
	Mounts  []Mount
	Devices []DeviceNode
	// CDIDevices are qualified CDI device names (vendor/class=name).
	CDIDevices []string
	// Exclusive says the edits hand the container its devices themselves
	// (VFIO instances for a VM sandbox): the plugin adds none of its device
	// list strategy's NVIDIA container toolkit edits.
	Exclusive bool
}
