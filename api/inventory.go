package api

import (
	"fmt"
)

// InventoryVersion is the current version of the Inventory schema.
const InventoryVersion = "gpuslice.io/v1"

// IsolationMode says how a GPU's shares are isolated from each other.
type IsolationMode string

// Isolation modes. New modes (mig, sriov-vgpu) extend this list; a reader
// treats an unknown mode as not schedulable.
const (
	// IsolationNone shares a GPU without enforcement (time slicing).
	IsolationNone IsolationMode = "none"
	// IsolationMPS enforces per-container memory and thread limits with an
	// NVIDIA MPS control daemon per GPU.
	IsolationMPS IsolationMode = "mps"
	// IsolationVGPU hands out mediated vGPU devices of VGPUType (Kata, KubeVirt).
	IsolationVGPU IsolationMode = "vgpu"
	// IsolationPassthrough hands out the whole GPU through VFIO.
	IsolationPassthrough IsolationMode = "passthrough"
)

// Known reports whether m is one of the modes this version understands.
func (m IsolationMode) Known() bool {
	switch m {
	case IsolationNone, IsolationMPS, IsolationVGPU, IsolationPassthrough:
		return true
	}
	return false
}

// LinkType is the best interconnect between two GPUs on one node, from best
// to worst. It mirrors NVML's topology levels.
type LinkType string

// Link types, best first.
const (
	LinkNVLink      LinkType = "nvlink"       // direct NVLink (NVLinks > 0)
	LinkPCIeSwitch  LinkType = "pcie-switch"  // behind the same PCIe switch(es) (NVML SINGLE/MULTIPLE)
	LinkHostBridge  LinkType = "host-bridge"  // same PCIe host bridge (NVML HOSTBRIDGE)
	LinkSameNUMA    LinkType = "numa"         // same NUMA node / CPU (NVML NODE)
	LinkCrossSocket LinkType = "cross-socket" // across the SMP interconnect (NVML SYSTEM)
)

// Rank returns the quality of the link: higher is better, 0 for unknown.
func (l LinkType) Rank() int {
	switch l {
	case LinkNVLink:
		return 5
	case LinkPCIeSwitch:
		return 4
	case LinkHostBridge:
		return 3
	case LinkSameNUMA:
		return 2
	case LinkCrossSocket:
		return 1
	}
	return 0
}

// Inventory is the node annotation the device plugin publishes: a versioned
// description of every GPU on the node.
type Inventory struct {
	// Version is InventoryVersion.
	Version string `json:"version"`
	// SliceMiB is the slice size the node's plugin advertises gpu-mem in. It
	// must equal the extender's cluster-wide slice size.
	SliceMiB int64 `json:"sliceMiB"`
	// MaxGPUsPerContainer, when positive, is the most GPUs one container may
	// span on this node. Isolation that cannot join several GPUs in one
	// container (MPS with a control daemon per GPU) publishes 1.
	MaxGPUsPerContainer int `json:"maxGPUsPerContainer,omitempty"`
	// Capabilities is what the node's driver and kernel can enforce; nil
	// when the plugin did not detect them.
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// Problems says, in words meant for the admin, what the plugin could
	// not set up on the node (a vGPU sizing it could not apply, a GPU it
	// does not serve and why); at most MaxInventoryProblems entries of at
	// most MaxProblemLen bytes.
	Problems []string `json:"problems,omitempty"`
	// GPUs lists every GPU, ordered by Index.
	GPUs []GPU `json:"gpus"`
}

// Bounds of Inventory.Problems.
const (
	MaxInventoryProblems = 32
	MaxProblemLen        = 1024
)

// GPU describes one physical GPU (or, for vGPU, one parent GPU).
type GPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Model     string `json:"model"`
	MemoryMiB int64  `json:"memoryMiB"`
	// Slices is the number of gpu-mem slices the GPU offers.
	Slices int64 `json:"slices"`
	// Slots is the number of sharing slots (MPS client cap, vGPU instances).
	Slots int64 `json:"slots"`
	// CoreUnits is the compute capacity in gpu-core units (100 per GPU).
	CoreUnits int64 `json:"coreUnits"`
	// NUMANode is the GPU's NUMA node, -1 when unknown.
	NUMANode int    `json:"numaNode"`
	PCIBusID string `json:"pciBusID,omitempty"`
	Healthy  bool   `json:"healthy"`
	// Reason says why the GPU is unhealthy.
	Reason    string        `json:"reason,omitempty"`
	Isolation IsolationMode `json:"isolation"`
	// VGPUType is the vGPU type for IsolationVGPU.
	VGPUType string `json:"vgpuType,omitempty"`
	// InstanceMiB is one instance's framebuffer for the whole-instance
	// modes (IsolationVGPU: the type's; IsolationPassthrough: the GPU's
	// memory); 0 for shared modes. See InstanceUnits.
	InstanceMiB int64 `json:"instanceMiB,omitempty"`
	// Enforcement is what the GPU's isolation enforces on a container's
	// share; empty in inventories that predate it (see GPU.Enforces).
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// MIGMode is the GPU's current MIG mode (MIGEnabled, MIGDisabled), ""
	// when the GPU does not support MIG.
	MIGMode string `json:"migMode,omitempty"`
	// Links describes the interconnect to every other GPU on the node.
	Links []Link `json:"links,omitempty"`
}

// Link is the interconnect from one GPU to a peer GPU on the same node.
type Link struct {
	// Peer is the peer GPU's Index.
	Peer int      `json:"peer"`
	Type LinkType `json:"type"`
	// NVLinks is the number of NVLink lanes between the two, for LinkNVLink.
	NVLinks int `json:"nvlinks,omitempty"`
}

// ParseInventory decodes and validates an inventory annotation.
func ParseInventory(s string) (*Inventory, error) {
	return decodeAnnotation[Inventory]("inventory", s)
}

// Validate checks the inventory for internal consistency and for the
// contract's bounds: at most MaxGPUsPerNode GPUs, and on each GPU at most
// CoreUnitsPerGPU core units, MaxSlicesPerGPU slices, MaxSlotsPerGPU slots
// and MaxMemoryMiBPerGPU MiB.
func (inv *Inventory) Validate() error {
	if inv.Version != InventoryVersion {
		return fmt.Errorf("version %q is not supported (want %q)", inv.Version, InventoryVersion)
	}
	if inv.MaxGPUsPerContainer < 0 || inv.MaxGPUsPerContainer > MaxGPUsPerNode {
		return fmt.Errorf("inventory maxGPUsPerContainer must be from 0 to %d, got %d", MaxGPUsPerNode, inv.MaxGPUsPerContainer)
	}
	if len(inv.Problems) > MaxInventoryProblems {
		return fmt.Errorf("inventory lists %d problems, more than %d", len(inv.Problems), MaxInventoryProblems)
	}
	for i, p := range inv.Problems {
		if len(p) > MaxProblemLen {
			return fmt.Errorf("inventory problem %d is %d bytes, more than %d", i, len(p), MaxProblemLen)
		}
	}
	if inv.Capabilities != nil {
		if err := inv.Capabilities.Validate(); err != nil {
			return err
		}
	}
	if inv.SliceMiB <= 0 || inv.SliceMiB > MaxMemoryMiBPerGPU {
		return fmt.Errorf("inventory sliceMiB must be from 1 to %d, got %d", MaxMemoryMiBPerGPU, inv.SliceMiB)
	}
	if len(inv.GPUs) > MaxGPUsPerNode {
		return fmt.Errorf("inventory lists %d GPUs, more than %d", len(inv.GPUs), MaxGPUsPerNode)
	}
	seenIdx := make(map[int]bool, len(inv.GPUs))
	seenUUID := make(map[string]bool, len(inv.GPUs))
	for i, g := range inv.GPUs {
		switch {
		case g.UUID == "":
			return fmt.Errorf("gpu %d: empty uuid", i)
		case seenUUID[g.UUID]:
			return fmt.Errorf("gpu %d: duplicate uuid %q", i, g.UUID)
		case seenIdx[g.Index] || g.Index < 0:
			return fmt.Errorf("gpu %d: bad or duplicate index %d", i, g.Index)
		case g.Slices < 0 || g.Slots < 0 || g.CoreUnits < 0 || g.MemoryMiB < 0 || g.InstanceMiB < 0:
			return fmt.Errorf("gpu %s: negative capacity", g.UUID)
		case g.overCapacity() != "":
			return fmt.Errorf("gpu %s: %s", g.UUID, g.overCapacity())
		case g.NUMANode < -1:
			return fmt.Errorf("gpu %s: bad NUMA node %d", g.UUID, g.NUMANode)
		case g.Isolation != "" && !g.Isolation.Known():
			return fmt.Errorf("gpu %s: unknown isolation mode %q", g.UUID, g.Isolation)
		case len(g.Links) > MaxGPUsPerNode:
			return fmt.Errorf("gpu %s: %d links, more than %d", g.UUID, len(g.Links), MaxGPUsPerNode)
		case g.validateEnforcement() != nil:
			return g.validateEnforcement()
		case g.validateInstances(inv.SliceMiB) != nil:
			return g.validateInstances(inv.SliceMiB)
		}
		seenIdx[g.Index] = true
		seenUUID[g.UUID] = true
	}
	for _, g := range inv.GPUs {
		for _, l := range g.Links {
			if !seenIdx[l.Peer] || l.Peer == g.Index {
				return fmt.Errorf("gpu %s: link to unknown peer %d", g.UUID, l.Peer)
			}
		}
	}
	return nil
}

// overCapacity names the first capacity of g above the contract's bound for
// one GPU, or returns "".
func (g *GPU) overCapacity() string {
	for _, c := range []struct {
		unit     string
		v, limit int64
	}{
		{"core units", g.CoreUnits, CoreUnitsPerGPU},
		{"slices", g.Slices, MaxSlicesPerGPU},
		{"slots", g.Slots, MaxSlotsPerGPU},
		{"MiB", g.MemoryMiB, MaxMemoryMiBPerGPU},
	} {
		if c.v > c.limit {
			return fmt.Sprintf("%d %s, more than %d per GPU", c.v, c.unit, c.limit)
		}
	}
	return ""
}

// Encode returns the annotation value for the inventory.
func (inv *Inventory) Encode() (string, error) { return encodeAnnotation("inventory", inv) }
