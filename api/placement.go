package api

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// PlacementVersion is the current version of the placement and allocation
// schema.
const PlacementVersion = "gpuslice.io/v1"

// AllocationVersion is the version of the allocation schema: the placement's.
const AllocationVersion = PlacementVersion

// Placement is the record of which GPU shares each container of a pod holds
// on Node. Two annotations carry it:
//
//   - AnnotationPlacement: written by the extender in the Binding (with
//     AssignedAt), and rewritten by the device plugin's reconcile when
//     kubelet gave other devices.
//   - AnnotationAllocated: written by the device plugin once kubelet has
//     allocated the pod's containers, confirmed through kubelet's
//     pod-resources API (with AllocatedAt). When the plugin rewrites the
//     placement it writes both in one patch, with equal Containers.
//
// Containers are in pod spec order (init containers first, in start
// order), which the charge rule (PodCharge) depends on.
type Placement struct {
	Version string `json:"version"`
	Node    string `json:"node"`
	// AssignedAt is when the extender chose the GPUs (RFC 3339, UTC).
	AssignedAt time.Time `json:"assignedAt,omitzero"`
	// AllocatedAt is when the plugin confirmed the allocation (RFC 3339,
	// UTC); set on the allocation record only.
	AllocatedAt time.Time            `json:"allocatedAt,omitzero"`
	Containers  []ContainerPlacement `json:"containers"`
}

// Allocation is the record the device plugin writes in AnnotationAllocated.
// It is the same validated record as the placement.
type Allocation = Placement

// ContainerPlacement is the GPU shares of one container.
type ContainerPlacement struct {
	Name string `json:"name"`
	// Init is true for init containers, sidecars (restartable init
	// containers) included.
	Init bool `json:"init,omitempty"`
	// Devices lists the container's GPUs in the order the container sees them
	// (CUDA device 0 first).
	Devices []DeviceShare `json:"devices"`
}

// DeviceShare is what a container takes on one GPU.
type DeviceShare struct {
	UUID  string `json:"uuid"`
	Index int    `json:"index"`
	// Slices of gpu-mem, Core units of gpu-core, Slots sharing slots (1).
	Slices int64 `json:"slices"`
	Core   int64 `json:"core"`
	Slots  int64 `json:"slots"`
}

// Units returns the share's amounts.
func (d DeviceShare) Units() Units { return Units{Slices: d.Slices, Core: d.Core, Slots: d.Slots} }

// ParsePlacement decodes and validates a placement annotation.
func ParsePlacement(s string) (*Placement, error) { return decodeAnnotation[Placement]("placement", s) }

// ParseAllocation decodes and validates an allocation annotation.
func ParseAllocation(s string) (*Allocation, error) {
	return decodeAnnotation[Placement]("allocation", s)
}

// Validate checks the record: version, node, container names unique per
// kind, and every share a known GPU identity with amounts within one GPU's
// bounds.
func (p *Placement) Validate() error {
	if p.Version != PlacementVersion {
		return fmt.Errorf("version %q is not supported (want %q)", p.Version, PlacementVersion)
	}
	if p.Node == "" {
		return errors.New("no node")
	}
	type key struct {
		name string
		init bool
	}
	seen := make(map[key]bool, len(p.Containers))
	for _, c := range p.Containers {
		if c.Name == "" {
			return errors.New("container without a name")
		}
		if seen[key{c.Name, c.Init}] {
			return fmt.Errorf("container %q listed twice", c.Name)
		}
		seen[key{c.Name, c.Init}] = true
		if len(c.Devices) > MaxGPUsPerNode {
			return fmt.Errorf("container %q: %d GPUs, more than %d", c.Name, len(c.Devices), MaxGPUsPerNode)
		}
		for j, d := range c.Devices {
			switch {
			case d.UUID == "" || d.Index < 0:
				return fmt.Errorf("container %q: device %d has no GPU identity", c.Name, j)
			case d.Slices < 0 || d.Slices > MaxSlicesPerGPU, d.Core < 0 || d.Core > CoreUnitsPerGPU, d.Slots < 0 || d.Slots > MaxSlotsPerGPU:
				return fmt.Errorf("container %q: bad device share %+v", c.Name, d)
			}
			for _, e := range c.Devices[:j] {
				if e.UUID == d.UUID {
					return fmt.Errorf("container %q: GPU %s listed twice", c.Name, d.UUID)
				}
			}
		}
	}
	return nil
}

// Encode returns the annotation value for the record.
func (p *Placement) Encode() (string, error) { return encodeAnnotation("placement", p) }

// Container returns the placement of the named container, or nil.
func (p *Placement) Container(name string, init bool) *ContainerPlacement {
	for i := range p.Containers {
		if p.Containers[i].Name == name && p.Containers[i].Init == init {
			return &p.Containers[i]
		}
	}
	return nil
}

// Equal reports whether two records hold the same shares: the same node and
// the same containers with the same devices in the same order. Version and
// timestamps are not compared. Two nil records are equal.
func (p *Placement) Equal(q *Placement) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Node == q.Node && slices.EqualFunc(p.Containers, q.Containers, func(a, b ContainerPlacement) bool {
		return a.Name == b.Name && a.Init == b.Init && slices.Equal(a.Devices, b.Devices)
	})
}
