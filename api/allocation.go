package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AllocationVersion is the current version of the Allocation schema.
const AllocationVersion = "gpuslice.io/v1"

// Allocation is the pod annotation (AnnotationAllocated) the device plugin
// writes once kubelet has allocated the pod's GPU containers. It records the
// devices kubelet actually handed out, confirmed through kubelet's
// pod-resources API. When it differs from the Placement (kubelet reused an
// init container's devices, or two interchangeable pods were swapped), the
// device plugin also rewrites the Placement so that the two agree.
type Allocation struct {
	Version string `json:"version"`
	Node    string `json:"node"`
	// AllocatedAt is when the plugin confirmed the allocation (RFC 3339, UTC).
	AllocatedAt time.Time `json:"allocatedAt"`
	// Containers uses the same shape as the placement: per container, the
	// GPUs in the order the container sees them and the share on each.
	Containers []ContainerPlacement `json:"containers"`
}

// ParseAllocation decodes and validates an allocation annotation.
func ParseAllocation(s string) (*Allocation, error) {
	if s == "" {
		return nil, errors.New("empty allocation")
	}
	var a Allocation
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, fmt.Errorf("decode allocation: %w", err)
	}
	if a.Version != AllocationVersion {
		return nil, fmt.Errorf("allocation version %q is not supported (want %q)", a.Version, AllocationVersion)
	}
	if a.Node == "" {
		return nil, errors.New("allocation has no node")
	}
	for _, c := range a.Containers {
		if c.Name == "" {
			return nil, errors.New("allocation container without a name")
		}
		for _, d := range c.Devices {
			if d.UUID == "" || d.Slices < 0 || d.Core < 0 || d.Slots < 0 {
				return nil, fmt.Errorf("allocation container %q: bad device share %+v", c.Name, d)
			}
		}
	}
	return &a, nil
}

// Encode returns the annotation value for the allocation.
func (a *Allocation) Encode() (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode allocation: %w", err)
	}
	return string(b), nil
}

// Container returns the allocation of the named container, or nil.
func (a *Allocation) Container(name string, init bool) *ContainerPlacement {
	for i := range a.Containers {
		if a.Containers[i].Name == name && a.Containers[i].Init == init {
			return &a.Containers[i]
		}
	}
	return nil
}
