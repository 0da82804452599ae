package api

import (
	"fmt"
	"strings"
)

// Whole-instance modes (IsolationVGPU, IsolationPassthrough) hand each
// container one hardware instance: an mdev or SR-IOV VF of the GPU's vGPU
// type, or the whole GPU. A container's share on such a GPU must fit in one
// instance and is charged the whole instance: a 3 GiB request on a GPU of
// 4 GiB instances takes 4 GiB, one slot and the instance's core units.
//
// The inventory says so per GPU: InstanceMiB is one instance's framebuffer
// (the whole memory for passthrough), Slots the number of instances, and
// Slices = Slots * (InstanceMiB / SliceMiB). Core units are split evenly:
// each instance holds CoreUnits / Slots.

// WholeInstance reports whether the mode hands out whole instances.
func (m IsolationMode) WholeInstance() bool {
	return m == IsolationVGPU || m == IsolationPassthrough
}

// Sandbox reports whether the mode is for VM sandboxes (Kata, KubeVirt):
// only pods whose runtime class maps to the mode may use it, and such pods
// may use nothing else.
func (m IsolationMode) Sandbox() bool { return m.WholeInstance() }

// InstanceUnits returns what one instance of g is, in units of a node whose
// slice is sliceMiB; zero for GPUs of shared modes (or a bad slice size).
func (g *GPU) InstanceUnits(sliceMiB int64) Units {
	if !g.Isolation.WholeInstance() || sliceMiB <= 0 || g.Slots <= 0 {
		return Units{}
	}
	return Units{Slices: g.InstanceMiB / sliceMiB, Core: g.CoreUnits / g.Slots, Slots: 1}
}

// ChargeOf returns what a container's per-GPU share costs on a GPU whose
// instance is inst: the share itself on shared GPUs (inst zero), the whole
// instance otherwise. Whether the share fits in the instance is
// FitsInstance.
func ChargeOf(inst, share Units) Units {
	if inst.IsZero() {
		return share
	}
	return inst
}

// FitsInstance reports whether a per-GPU share can be served by one
// instance inst (always true on shared GPUs, inst zero).
func FitsInstance(inst, share Units) bool {
	return inst.IsZero() || (share.Slices <= inst.Slices && share.Core <= inst.Core && share.Slots <= inst.Slots)
}

// validateInstances checks the whole-instance fields of g on a node of
// slice sliceMiB.
func (g *GPU) validateInstances(sliceMiB int64) error {
	if !g.Isolation.WholeInstance() {
		if g.InstanceMiB != 0 {
			return fmt.Errorf("gpu %s: instanceMiB %d on a GPU of isolation %q (only %s and %s have instances)", g.UUID, g.InstanceMiB, g.Isolation, IsolationVGPU, IsolationPassthrough)
		}
		return nil
	}
	switch {
	case g.InstanceMiB <= 0 && g.Slots > 0:
		return fmt.Errorf("gpu %s: %s GPU without instanceMiB", g.UUID, g.Isolation)
	case g.MemoryMiB > 0 && g.InstanceMiB > g.MemoryMiB:
		return fmt.Errorf("gpu %s: instanceMiB %d is more than the GPU's %d MiB", g.UUID, g.InstanceMiB, g.MemoryMiB)
	case g.Isolation == IsolationPassthrough && g.Slots > 1:
		return fmt.Errorf("gpu %s: a passthrough GPU is one instance, got %d slots", g.UUID, g.Slots)
	case g.Slices != g.Slots*(g.InstanceMiB/sliceMiB):
		return fmt.Errorf("gpu %s: %d slices, want %d instances of %d slices (instanceMiB %d / sliceMiB %d)",
			g.UUID, g.Slices, g.Slots, g.InstanceMiB/sliceMiB, g.InstanceMiB, sliceMiB)
	}
	return nil
}

// RuntimeClassModes maps RuntimeClass names to the VM-sandbox isolation
// mode their pods need (the admin's mapping: a Kata or KubeVirt runtime
// class to vgpu or passthrough). A pod whose runtime class is not in the
// map runs containers.
type RuntimeClassModes map[string]IsolationMode

// ParseRuntimeClassModes parses "name=mode,name=mode" (modes vgpu or
// passthrough). The empty string is the empty map.
func ParseRuntimeClassModes(s string) (RuntimeClassModes, error) {
	out := RuntimeClassModes{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, mode, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("runtime class mapping %q: want name=mode", kv)
		}
		if err := out.add(name, IsolationMode(mode)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m RuntimeClassModes) add(name string, mode IsolationMode) error {
	if !mode.Sandbox() {
		return fmt.Errorf("runtime class %q: mode %q is not a VM-sandbox mode (want %s or %s)", name, mode, IsolationVGPU, IsolationPassthrough)
	}
	if _, dup := m[name]; dup {
		return fmt.Errorf("runtime class %q is mapped twice", name)
	}
	m[name] = mode
	return nil
}

// Validate checks every entry of a mapping built from a config file.
func (m RuntimeClassModes) Validate() error {
	for name, mode := range m {
		if name == "" {
			return fmt.Errorf("runtime class mapping with an empty name")
		}
		if !mode.Sandbox() {
			return fmt.Errorf("runtime class %q: mode %q is not a VM-sandbox mode (want %s or %s)", name, mode, IsolationVGPU, IsolationPassthrough)
		}
	}
	return nil
}

// ModeFor returns the sandbox mode a pod of runtime class rc needs, ""
// (containers) when rc is nil or not mapped.
func (m RuntimeClassModes) ModeFor(rc *string) IsolationMode {
	if rc == nil {
		return ""
	}
	return m[*rc]
}

// IsolationAllowed reports whether a pod that needs sandbox mode sandbox
// ("" for containers) may use a GPU of isolation mode m: a container pod
// only GPUs of shared modes, a VM pod only GPUs of its own mode.
func IsolationAllowed(sandbox, m IsolationMode) bool {
	if sandbox == "" {
		return !m.Sandbox()
	}
	return m == sandbox
}
