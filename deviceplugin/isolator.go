package deviceplugin

import (
	"context"
	"errors"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// NoIsolation shares GPUs without enforcement: every container sees the
// whole GPU and its share is only a scheduling promise.
type NoIsolation struct {
	// SlotsPerGPU is the number of containers that may share one GPU.
	SlotsPerGPU int64
}

// Mode implements device.Isolator.
func (NoIsolation) Mode() api.IsolationMode { return api.IsolationNone }

// Start implements device.Isolator.
func (n NoIsolation) Start(context.Context, []device.GPU) error {
	if n.SlotsPerGPU <= 0 {
		return errors.New("isolation none: slots per GPU must be positive")
	}
	return nil
}

// Slots implements device.Isolator.
func (n NoIsolation) Slots(device.GPU) int64 { return n.SlotsPerGPU }

// Healthy implements device.Isolator.
func (NoIsolation) Healthy(string) (bool, string) { return true, "" }

// Events implements device.Isolator.
func (NoIsolation) Events() <-chan device.HealthEvent { return nil }

// ContainerEdits implements device.Isolator: nothing to add.
func (NoIsolation) ContainerEdits([]device.ContainerDevice) (*device.ContainerEdits, error) {
	return &device.ContainerEdits{}, nil
}

// Stop implements device.Isolator.
func (NoIsolation) Stop() {}

var _ device.Isolator = NoIsolation{}
