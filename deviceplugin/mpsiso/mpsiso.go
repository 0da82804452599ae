// Package mpsiso owns the adapter that plugs the MPS manager
// (deviceplugin/mps, which owns the daemons and the per-container MPS
// limits) into the device plugin's Isolator hook. It only converts types;
// all MPS behaviour lives in package mps.
package mpsiso

import (
	"context"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
)

// Manager is the part of *mps.Manager the adapter uses.
type Manager interface {
	Start(ctx context.Context, gpus []mps.GPU) error
	Slots(g mps.GPU) int64
	Healthy(uuid string) (bool, string)
	Events() <-chan mps.HealthEvent
	ContainerEdits(devs []mps.ContainerDevice) (*mps.ContainerEdits, error)
	Stop()
}

var _ Manager = (*mps.Manager)(nil)

// Isolator adapts a Manager to deviceplugin.Isolator.
type Isolator struct {
	m      Manager
	events chan deviceplugin.IsolatorEvent
}

var _ deviceplugin.Isolator = (*Isolator)(nil)

// New returns the adapter.
func New(m Manager) *Isolator {
	return &Isolator{m: m, events: make(chan deviceplugin.IsolatorEvent, 64)}
}

func gpu(g deviceplugin.IsolatorGPU) mps.GPU {
	return mps.GPU{Index: g.Index, UUID: g.UUID, MemoryMiB: g.MemoryMiB, Major: g.Major, Minor: g.Minor, MIGEnabled: g.MIGEnabled}
}

// Mode implements deviceplugin.Isolator.
func (*Isolator) Mode() api.IsolationMode { return api.IsolationMPS }

// Start starts the daemons and forwards their health events until ctx ends.
func (i *Isolator) Start(ctx context.Context, gpus []deviceplugin.IsolatorGPU) error {
	gs := make([]mps.GPU, 0, len(gpus))
	for _, g := range gpus {
		gs = append(gs, gpu(g))
	}
	if err := i.m.Start(ctx, gs); err != nil {
		return err
	}
	in := i.m.Events()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-in:
				if !ok {
					return
				}
				select {
				case i.events <- deviceplugin.IsolatorEvent{UUID: e.UUID, Healthy: e.Healthy, Reason: e.Reason}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return nil
}

// Slots implements deviceplugin.Isolator.
func (i *Isolator) Slots(g deviceplugin.IsolatorGPU) int64 { return i.m.Slots(gpu(g)) }

// Healthy implements deviceplugin.Isolator.
func (i *Isolator) Healthy(uuid string) (bool, string) { return i.m.Healthy(uuid) }

// Events implements deviceplugin.Isolator.
func (i *Isolator) Events() <-chan deviceplugin.IsolatorEvent { return i.events }

// ContainerEdits implements deviceplugin.Isolator.
func (i *Isolator) ContainerEdits(devs []deviceplugin.ContainerDevice) (*deviceplugin.ContainerEdits, error) {
	in := make([]mps.ContainerDevice, 0, len(devs))
	for _, d := range devs {
		in = append(in, mps.ContainerDevice{UUID: d.UUID, HostIndex: d.HostIndex, ContainerIndex: d.ContainerIndex,
			MemLimitMiB: d.MemLimitMiB, ThreadPercentage: d.ThreadPercentage})
	}
	e, err := i.m.ContainerEdits(in)
	if err != nil {
		return nil, err
	}
	out := &deviceplugin.ContainerEdits{Envs: e.Envs}
	for _, m := range e.Mounts {
		out.Mounts = append(out.Mounts, deviceplugin.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	return out, nil
}

// MaxGPUsPerContainer implements deviceplugin.ContainerGPULimiter with the
// manager's limit (1 for a control daemon per GPU), or 0 when the manager
// does not say.
func (i *Isolator) MaxGPUsPerContainer() int {
	if l, ok := i.m.(deviceplugin.ContainerGPULimiter); ok {
		return l.MaxGPUsPerContainer()
	}
	return 0
}

var _ deviceplugin.ContainerGPULimiter = (*Isolator)(nil)

// Stop implements deviceplugin.Isolator.
func (i *Isolator) Stop() { i.m.Stop() }
