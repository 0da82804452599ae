package allocator

import (
	"fmt"
	"slices"
)

// ContainerRequest is one container's GPU request, in totals over its GPUs.
type ContainerRequest struct {
	Name string
	// Init marks an init container.
	Init bool
	// Slices is the total gpu-mem, Core the total gpu-core, Count the number
	// of GPUs (0 means the default of one when Slices > 0).
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

// PerGPU returns what the container takes on each of its GPUs. Valid only
// after Validate.
func (c ContainerRequest) PerGPU() Units {
	k := int64(c.GPUs())
	return Units{Slices: c.Slices / k, Core: c.Core / k, Slots: 1}
}

// Validate checks that the request follows the resource contract.
func (c ContainerRequest) Validate() error {
	switch {
	case c.Slices < 0 || c.Core < 0 || c.Count < 0:
		return fmt.Errorf("container %q: negative GPU request", c.Name)
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
	if c.Core/k > 100 {
		return fmt.Errorf("container %q: gpu-core %d over %d GPUs is more than 100 per GPU", c.Name, c.Core, k)
	}
	return nil
}

// PodRequest is the GPU request of a whole pod.
type PodRequest struct {
	// Containers holds the init and app containers that ask for GPUs, in
	// pod spec order (init containers first).
	Containers []ContainerRequest
	// Models, when not empty, restricts the pod to GPUs of these models.
	Models []string
	// CPUMilli is the pod's host CPU request; checked only on nodes that
	// track CPU (the trace simulator).
	CPUMilli int64
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
