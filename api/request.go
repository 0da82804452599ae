package api

import (
	"fmt"
	"slices"
)

// Bounds of the contract. They are far above any real GPU or node and keep
// every sum and product of the accounting far from int64 overflow.
const (
	// MaxGPUsPerNode is the most GPUs an inventory may list, and so the
	// most a container may spread over.
	MaxGPUsPerNode = 128
	// MaxSlicesPerGPU is the most gpu-mem slices one GPU may offer (1 TiB
	// at the smallest slice size).
	MaxSlicesPerGPU = 4096
	// MaxSlotsPerGPU is the most sharing slots one GPU may offer.
	MaxSlotsPerGPU = 1024
	// MaxMemoryMiBPerGPU is the most memory one GPU may claim (4 TiB).
	MaxMemoryMiBPerGPU = 4 << 20
)

// Per-container request bounds, in each resource's own unit.
const (
	// MaxRequestSlices is the largest gpu-mem a container may ask (slices).
	MaxRequestSlices = MaxGPUsPerNode * MaxSlicesPerGPU
	// MaxRequestCore is the largest gpu-core a container may ask (units).
	MaxRequestCore = MaxGPUsPerNode * CoreUnitsPerGPU
	// MaxRequestCount is the largest gpu-count a container may ask (GPUs).
	MaxRequestCount = MaxGPUsPerNode
)

// ContainerRequest is one container's gpuslice request, in totals over its
// GPUs.
type ContainerRequest struct {
	Name string
	// Init marks an init container, including a sidecar.
	Init bool
	// Sidecar marks a restartable init container (restartPolicy Always): it
	// starts in init order and runs for the pod's whole life. Init is true
	// too.
	Sidecar bool
	// Slices is the total gpu-mem in slices, Core the total gpu-core in
	// units, Count the number of GPUs (0 means the default of one when
	// Slices > 0).
	Slices int64
	Core   int64
	Count  int64
}

// HasGPU reports whether the container asks for any GPU resource.
func (c ContainerRequest) HasGPU() bool { return c.Slices > 0 || c.Core > 0 || c.Count > 0 }

// GPUs returns the number of GPUs the container spreads over.
func (c ContainerRequest) GPUs() int {
	if c.Count <= 0 {
		return 1
	}
	return int(c.Count)
}

// PerGPU returns what the container takes on each of its GPUs: the totals
// split evenly, and one sharing slot. Valid only after Validate.
func (c ContainerRequest) PerGPU() Units {
	k := int64(c.GPUs())
	return Units{Slices: c.Slices / k, Core: c.Core / k, Slots: 1}
}

// Validate checks that the request follows the resource contract.
func (c ContainerRequest) Validate() error {
	switch {
	case c.Slices < 0 || c.Core < 0 || c.Count < 0:
		return fmt.Errorf("container %q: negative GPU request", c.Name)
	case c.Slices > MaxRequestSlices:
		return fmt.Errorf("container %q: gpu-mem %d is too large (at most %d slices)", c.Name, c.Slices, MaxRequestSlices)
	case c.Core > MaxRequestCore:
		return fmt.Errorf("container %q: gpu-core %d is too large (at most %d)", c.Name, c.Core, MaxRequestCore)
	case c.Count > MaxRequestCount:
		return fmt.Errorf("container %q: gpu-count %d is too large (at most %d GPUs)", c.Name, c.Count, MaxRequestCount)
	case c.Sidecar && !c.Init:
		return fmt.Errorf("container %q: a sidecar must be an init container", c.Name)
	case c.Count > 0 && c.Slices == 0:
		return fmt.Errorf("container %q: gpu-count %d given without gpu-mem", c.Name, c.Count)
	case c.Core > 0 && c.Slices == 0:
		return fmt.Errorf("container %q: gpu-core %d given without gpu-mem", c.Name, c.Core)
	}
	k := int64(c.GPUs())
	if c.Slices%k != 0 {
		return fmt.Errorf("container %q: gpu-mem %d cannot be split evenly over %d GPUs", c.Name, c.Slices, k)
	}
	if c.Core%k != 0 {
		return fmt.Errorf("container %q: gpu-core %d cannot be split evenly over %d GPUs", c.Name, c.Core, k)
	}
	if c.Core/k > CoreUnitsPerGPU {
		return fmt.Errorf("container %q: gpu-core %d over %d GPUs is more than %d per GPU", c.Name, c.Core, k, CoreUnitsPerGPU)
	}
	if c.Slices/k > MaxSlicesPerGPU {
		return fmt.Errorf("container %q: gpu-mem %d over %d GPUs is more than %d slices per GPU", c.Name, c.Slices, k, MaxSlicesPerGPU)
	}
	return nil
}

// PodRequest is the gpuslice request of a whole pod.
type PodRequest struct {
	// Containers holds the init and app containers that ask for GPUs, in
	// pod spec order (init containers first, in the order they start).
	Containers []ContainerRequest
	// Models, when not empty, restricts the pod to GPUs of these models.
	Models []string
	// MinEnforcement, when set, restricts the pod to GPUs that enforce at
	// least this much (AnnotationEnforcement).
	MinEnforcement Enforcement
	// Sandbox is the VM-sandbox isolation mode the pod's runtime class needs
	// (RuntimeClassModes.ModeFor), "" for a pod that runs containers. The
	// extender sets it from its mapping; ParsePodRequest leaves it empty.
	Sandbox IsolationMode
	// CPUMilli is the pod's host CPU request in milli-cores; checked only on
	// nodes that track CPU (the trace simulator).
	CPUMilli int64
}

// Equal reports whether r and o ask for the same thing, field by field.
func (r *PodRequest) Equal(o *PodRequest) bool {
	if r == nil || o == nil {
		return r == o
	}
	return slices.Equal(r.Containers, o.Containers) && slices.Equal(r.Models, o.Models) &&
		r.MinEnforcement == o.MinEnforcement && r.Sandbox == o.Sandbox && r.CPUMilli == o.CPUMilli
}

// Clone returns a deep copy of r.
func (r *PodRequest) Clone() *PodRequest {
	if r == nil {
		return nil
	}
	out := *r
	out.Containers = slices.Clone(r.Containers)
	out.Models = slices.Clone(r.Models)
	return &out
}

// HasGPU reports whether any container asks for a GPU resource.
func (r *PodRequest) HasGPU() bool {
	for _, c := range r.Containers {
		if c.HasGPU() {
			return true
		}
	}
	return false
}

// Validate checks every container request.
func (r *PodRequest) Validate() error {
	for _, c := range r.Containers {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// ModelAllowed reports whether a GPU model is allowed for the pod.
func (r *PodRequest) ModelAllowed(model string) bool {
	return len(r.Models) == 0 || slices.Contains(r.Models, model)
}

// EnforcementAllowed reports whether a GPU that enforces e is strong
// enough for the pod.
func (r *PodRequest) EnforcementAllowed(e Enforcement) bool {
	return r.MinEnforcement == "" || e.AtLeast(r.MinEnforcement)
}

// Container returns the request of the named container, or nil.
func (r *PodRequest) Container(name string, init bool) *ContainerRequest {
	for i := range r.Containers {
		if r.Containers[i].Name == name && r.Containers[i].Init == init {
			return &r.Containers[i]
		}
	}
	return nil
}

// MaxPerGPU returns the largest per-GPU demand over the containers, and the
// largest GPU count. The extender uses it for a fast pre-check.
func (r *PodRequest) MaxPerGPU() (Units, int) {
	var u Units
	k := 0
	for _, c := range r.Containers {
		if !c.HasGPU() {
			continue
		}
		u = u.Max(c.PerGPU())
		k = max(k, c.GPUs())
	}
	return u, k
}
