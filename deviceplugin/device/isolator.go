package device

import (
	"context"

	"github.com/gpuslice/gpuslice/api"
)

// Isolator is the hook an isolation mode plugs into. The device plugin calls
// Start once with the GPUs it serves (MIG-enabled GPUs excluded), asks Slots
// for each GPU's sharing slots, treats a GPU as unhealthy while Healthy says
// so (and follows Events), merges ContainerEdits into every gpu-mem Allocate
// response, and calls Stop when it ends.
type Isolator interface {
	Mode() api.IsolationMode
	Start(ctx context.Context, gpus []GPU) error
	Slots(g GPU) int64
	Healthy(uuid string) (bool, string)
	// Events may return nil when the mode never changes health; a non-nil
	// channel may be closed by Stop.
	Events() <-chan HealthEvent
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

// Instances describes the instances of one GPU of a whole-instance mode.
type Instances struct {
	// Mode is api.IsolationVGPU or api.IsolationPassthrough.
	Mode api.IsolationMode
	// VGPUType is the vGPU type's name; empty for passthrough.
	VGPUType string
	// InstanceMiB is one instance's framebuffer (passthrough: the GPU's
	// memory).
	InstanceMiB int64
	// MemoryMiB, when positive, is the GPU's memory where discovery did not
	// know it (a GPU that NVML does not see).
	MemoryMiB int64
}

// WholeInstancer is implemented by an Isolator whose GPUs hand out whole
// instances (vGPU, passthrough). The plugin publishes such a GPU with the
// Instances' mode, type and size, Slots (from Isolator.Slots) instances and
// Slots * (InstanceMiB / SliceMiB) slices; instance j owns the gpu-mem
// device IDs [j*k, (j+1)*k) with k = InstanceMiB / SliceMiB, and a
// container's IDs on such a GPU must lie in one instance no other container
// holds.
type WholeInstancer interface {
	// Instances describes g's instances; ok is false when g has none.
	Instances(g GPU) (inst Instances, ok bool)
}

// ProblemReporter is implemented by an Isolator whose Start can partly
// fail without failing the plugin (a vGPU reconcile that could not create
// every instance). The plugin logs each problem and records it as a node
// event after Start.
type ProblemReporter interface {
	// Problems returns what the last Start could not do, in words for a
	// node event.
	Problems() []string
}
