package api

import (
	"fmt"
	"slices"
)

// Enforcement says what a GPU's isolation enforces on a container's share:
// whether the container itself can raise its memory and compute limits.
type Enforcement string

// Enforcement levels, strongest first.
const (
	// EnforcementBinding: the container cannot raise its limits. An MPS v3
	// namespace of its own with a hard memory limit on its cgroup, or a
	// hardware partition (vGPU, VFIO passthrough).
	EnforcementBinding Enforcement = "binding"
	// EnforcementCeiling: per-container limits that the container can raise
	// up to a per-GPU ceiling (legacy MPS: the client environment sets the
	// limits, the control daemon's defaults bound them).
	EnforcementCeiling Enforcement = "ceiling"
	// EnforcementNone: shares are scheduled but not enforced (time slicing).
	EnforcementNone Enforcement = "none"
)

// Enforcements lists the levels, strongest first.
func Enforcements() []Enforcement {
	return []Enforcement{EnforcementBinding, EnforcementCeiling, EnforcementNone}
}

// Known reports whether e is one of the levels this version understands.
func (e Enforcement) Known() bool { return slices.Contains(Enforcements(), e) }

// AtLeast reports whether e enforces at least as much as floor. An unknown
// level enforces nothing.
func (e Enforcement) AtLeast(floor Enforcement) bool {
	rank := func(x Enforcement) int { return len(Enforcements()) - slices.Index(Enforcements(), x) }
	return e.Known() && rank(e) >= rank(floor)
}

// DefaultEnforcement is what an isolation mode enforces when the plugin
// does not say more: legacy MPS a ceiling, hardware partitions binding
// limits, time slicing nothing. An unknown mode enforces nothing.
func DefaultEnforcement(m IsolationMode) Enforcement {
	switch m {
	case IsolationMPS:
		return EnforcementCeiling
	case IsolationVGPU, IsolationPassthrough:
		return EnforcementBinding
	}
	return EnforcementNone
}

// Enforces returns what the GPU enforces: its published Enforcement, or
// DefaultEnforcement of its isolation mode for an inventory that predates
// the field.
func (g *GPU) Enforces() Enforcement {
	if g.Enforcement != "" {
		return g.Enforcement
	}
	return DefaultEnforcement(g.Isolation)
}

// MIG modes of a GPU as NVML reports its current mode.
const (
	MIGEnabled  = "enabled"
	MIGDisabled = "disabled"
)

// Memory-partitioning backends: how device memory is accounted per cgroup.
const (
	// MemoryPartitioningDMem is the cgroup v2 dmem controller (dmem.max,
	// dmem.min), on kernels that have it (6.14 and later).
	MemoryPartitioningDMem = "dmem"
	// MemoryPartitioningMisc is the driver's own backend, which NVIDIA's MPS
	// v3 driver falls back to on a cgroup v2 kernel without dmem; its
	// limits are set through NVML only (no dmem.* files).
	MemoryPartitioningMisc = "misc"
)

// maxVersionLen bounds the version strings of Capabilities.
const maxVersionLen = 64

// Capabilities is what the device plugin found its node able to enforce,
// published in the inventory so the extender and the views can show it.
type Capabilities struct {
	// DriverVersion is the NVIDIA driver's version ("615.12.03").
	DriverVersion string `json:"driverVersion,omitempty"`
	// CUDAVersion is the CUDA version the driver supports ("13.4").
	CUDAVersion string `json:"cudaVersion,omitempty"`
	// MPSv3 says the driver supports MPS v3 (namespaces).
	MPSv3 bool `json:"mpsV3"`
	// CgroupV2 says the node runs the unified cgroup hierarchy.
	CgroupV2 bool `json:"cgroupV2"`
	// MemoryPartitioning names the per-cgroup device-memory accounting
	// backend (MemoryPartitioningDMem or MemoryPartitioningMisc), "" for
	// none.
	MemoryPartitioning string `json:"memoryPartitioning,omitempty"`
}

// Validate checks the capabilities' bounds and known values.
func (c *Capabilities) Validate() error {
	switch {
	case len(c.DriverVersion) > maxVersionLen || len(c.CUDAVersion) > maxVersionLen:
		return fmt.Errorf("capabilities: version longer than %d bytes", maxVersionLen)
	case c.MemoryPartitioning != "" && c.MemoryPartitioning != MemoryPartitioningDMem && c.MemoryPartitioning != MemoryPartitioningMisc:
		return fmt.Errorf("capabilities: unknown memory partitioning %q", c.MemoryPartitioning)
	}
	return nil
}

// validateEnforcement checks the GPU's enforcement fields.
func (g *GPU) validateEnforcement() error {
	switch {
	case g.Enforcement != "" && !g.Enforcement.Known():
		return fmt.Errorf("gpu %s: unknown enforcement %q", g.UUID, g.Enforcement)
	case g.MIGMode != "" && g.MIGMode != MIGEnabled && g.MIGMode != MIGDisabled:
		return fmt.Errorf("gpu %s: unknown MIG mode %q", g.UUID, g.MIGMode)
	}
	return nil
}
