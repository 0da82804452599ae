package extender

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// PodRequest reads the gpuslice request of a pod. It returns an error that
// names the container and the problem when the pod breaks the resource
// contract (fractions, uneven splits, gpu-count without gpu-mem, a bad
// gpu-models annotation).
func PodRequest(pod *v1.Pod) (*allocator.PodRequest, error) {
	r := &allocator.PodRequest{}
	hasSidecar := false
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			hasSidecar = true
		}
	}
	add := func(c *v1.Container, init bool) error {
		cr := allocator.ContainerRequest{Name: c.Name, Init: init}
		var err error
		if cr.Slices, err = quantity(c, api.ResourceGPUMem); err != nil {
			return err
		}
		if cr.Core, err = quantity(c, api.ResourceGPUCore); err != nil {
			return err
		}
		if cr.Count, err = quantity(c, api.ResourceGPUCount); err != nil {
			return err
		}
		if !cr.HasGPU() {
			return nil
		}
		if err := cr.Validate(); err != nil {
			return err
		}
		r.Containers = append(r.Containers, cr)
		return nil
	}
	for i := range pod.Spec.InitContainers {
		// Sidecars (restartable init containers) run beside the app
		// containers. With a sidecar in the pod, every init container is
		// accounted as running alongside (a conservative sum), because a
		// regular init container after a sidecar overlaps with it.
		if err := add(&pod.Spec.InitContainers[i], !hasSidecar); err != nil {
			return nil, err
		}
	}
	for i := range pod.Spec.Containers {
		if err := add(&pod.Spec.Containers[i], false); err != nil {
			return nil, err
		}
	}
	if s, ok := pod.Annotations[api.AnnotationGPUModels]; ok {
		for _, m := range strings.Split(s, ",") {
			m = strings.TrimSpace(m)
			if m == "" {
				return nil, fmt.Errorf("annotation %s=%q has an empty model name", api.AnnotationGPUModels, s)
			}
			r.Models = append(r.Models, m)
		}
	}
	return r, nil
}

// quantity returns the container's amount of a gpuslice resource: the limit,
// or the request when no limit is set (extended resources cannot be
// overcommitted, so the two are equal when both are set).
func quantity(c *v1.Container, name v1.ResourceName) (int64, error) {
	q, ok := c.Resources.Limits[name]
	if !ok {
		if q, ok = c.Resources.Requests[name]; !ok {
			return 0, nil
		}
	}
	return wholeNumber(c.Name, name, q)
}

func wholeNumber(container string, name v1.ResourceName, q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fmt.Errorf("container %q: %s must not be negative, got %s", container, name, q.String())
	}
	v, ok := q.AsInt64()
	if !ok || q.MilliValue()%1000 != 0 {
		return 0, fmt.Errorf("container %q: %s must be a whole number, got %s", container, name, q.String())
	}
	return v, nil
}
