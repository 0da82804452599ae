package deviceplugin

import (
	"context"
	"errors"

	"github.com/gpuslice/gpuslice/api"
)

// IsolatorGPU is what an isolator needs to know about a GPU.
type IsolatorGPU struct {
	Index      int
	UUID       string
	MemoryMiB  int64
	Major      int
	Minor      int
	MIGEnabled bool
}

// ContainerDevice is one GPU of a container and the container's share of it.
type ContainerDevice struct {
	UUID string
	// HostIndex is the NVML index; ContainerIndex the CUDA index inside the
	// container (position in CUDA_VISIBLE_DEVICES).
	HostIndex      int
	ContainerIndex int
	// MemLimitMiB is the gpu-mem share in MiB.
	MemLimitMiB int64
	// ThreadPercentage is the gpu-core share in percent, 0 when none.
	ThreadPercentage int
}

// Mount is a bind mount for a container.
type Mount struct {
	ContainerPath, HostPath string
	ReadOnly                bool
}

// ContainerEdits are environment variables and mounts an isolator adds.
type ContainerEdits struct {
	Envs   map[string]string
	Mounts []Mount
}

// IsolatorEvent is a change of a GPU's isolation health.
type IsolatorEvent struct {
	UUID    string
	Healthy bool
	Reason  string
}

// Isolator is the hook an isolation mode plugs into. The plugin calls Start
// once with the GPUs it serves, asks Slots for each GPU's sharing slots,
// treats a GPU as unhealthy while Healthy says so (and follows Events), and
// merges ContainerEdits into every Allocate response of gpu-mem.
type Isolator interface {
	Mode() api.IsolationMode
	Start(ctx context.Context, gpus []IsolatorGPU) error
	Slots(g IsolatorGPU) int64
	Healthy(uuid string) (bool, string)
	// Events may return nil when the mode never changes health.
	Events() <-chan IsolatorEvent
	ContainerEdits(devs []ContainerDevice) (*ContainerEdits, error)
	Stop()
}

// ContainerGPULimiter is implemented by an Isolator that cannot join more
// than a number of GPUs in one container (MPS with a control daemon per GPU:
// a container reaches one daemon through its one pipe directory). The plugin
// publishes the limit as api.Inventory.MaxGPUsPerContainer so that the
// extender never places such a container across GPUs.
type ContainerGPULimiter interface {
	// MaxGPUsPerContainer is the most GPUs one container may span; 0 means
	// no limit.
	MaxGPUsPerContainer() int
}

// MaxGPUsPerContainer returns iso's limit on the GPUs of one container, 0
// (no limit) when iso does not implement ContainerGPULimiter.
func MaxGPUsPerContainer(iso Isolator) int {
	if l, ok := iso.(ContainerGPULimiter); ok {
		return max(l.MaxGPUsPerContainer(), 0)
	}
	return 0
}

// NoIsolation shares GPUs without enforcement: every container sees the
// whole GPU and its share is only a scheduling promise.
type NoIsolation struct {
	// SlotsPerGPU is the number of containers that may share one GPU.
	SlotsPerGPU int64
}

// Mode implements Isolator.
func (NoIsolation) Mode() api.IsolationMode { return api.IsolationNone }

// Start implements Isolator.
func (n NoIsolation) Start(context.Context, []IsolatorGPU) error {
	if n.SlotsPerGPU <= 0 {
		return errors.New("isolation none: slots per GPU must be positive")
	}
	return nil
}

// Slots implements Isolator.
func (n NoIsolation) Slots(IsolatorGPU) int64 { return n.SlotsPerGPU }

// Healthy implements Isolator.
func (NoIsolation) Healthy(string) (bool, string) { return true, "" }

// Events implements Isolator.
func (NoIsolation) Events() <-chan IsolatorEvent { return nil }

// ContainerEdits implements Isolator: nothing to add.
func (NoIsolation) ContainerEdits([]ContainerDevice) (*ContainerEdits, error) {
	return &ContainerEdits{}, nil
}

// Stop implements Isolator.
func (NoIsolation) Stop() {}
