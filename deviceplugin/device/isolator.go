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
