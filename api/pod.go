package api

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ParsePodRequest reads the gpuslice request of a pod: every init container
// (sidecars marked as such) and app container that asks for a gpuslice
// resource, in pod spec order, and the gpu-models annotation. The error
// names the container and the problem when the pod breaks the resource
// contract (fractions, values out of bounds, uneven splits, gpu-count
// without gpu-mem, a bad gpu-models annotation).
func ParsePodRequest(pod *corev1.Pod) (*PodRequest, error) {
	r := &PodRequest{}
	for _, list := range []struct {
		containers []corev1.Container
		init       bool
	}{{pod.Spec.InitContainers, true}, {pod.Spec.Containers, false}} {
		for i := range list.containers {
			cr, err := ParseContainerRequest(&list.containers[i], list.init)
			if err != nil {
				return nil, err
			}
			if cr.HasGPU() {
				r.Containers = append(r.Containers, cr)
			}
		}
	}
	models, err := ParseGPUModels(pod.Annotations)
	if err != nil {
		return nil, err
	}
	r.Models = models
	if r.MinEnforcement, err = ParseEnforcement(pod.Annotations); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseContainerRequest reads one container's gpuslice request; init says
// whether c is one of the pod's init containers (then a restartPolicy of
// Always makes it a sidecar). A container that asks for nothing returns a
// request whose HasGPU is false and no error. A request that asks for
// something is validated.
func ParseContainerRequest(c *corev1.Container, init bool) (ContainerRequest, error) {
	cr := ContainerRequest{Name: c.Name, Init: init, Sidecar: init && IsSidecar(c)}
	var err error
	if cr.Slices, err = Quantity(c, ResourceGPUMem, MaxRequestSlices); err != nil {
		return ContainerRequest{}, err
	}
	if cr.Core, err = Quantity(c, ResourceGPUCore, MaxRequestCore); err != nil {
		return ContainerRequest{}, err
	}
	if cr.Count, err = Quantity(c, ResourceGPUCount, MaxRequestCount); err != nil {
		return ContainerRequest{}, err
	}
	if !cr.HasGPU() {
		return cr, nil
	}
	if err := cr.Validate(); err != nil {
		return ContainerRequest{}, err
	}
	return cr, nil
}

// IsSidecar reports whether an init container is a sidecar (restartPolicy
// Always).
func IsSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// Quantity returns a container's amount of a gpuslice resource: the limit,
// or the request when no limit is set (extended resources cannot be
// overcommitted, so the two are equal when both are set). It must be a
// whole number from 0 to limit; the bound is checked before anything that
// could overflow, so a huge value is reported as too large.
func Quantity(c *corev1.Container, name corev1.ResourceName, limit int64) (int64, error) {
	q, ok := c.Resources.Limits[name]
	if !ok {
		if q, ok = c.Resources.Requests[name]; !ok {
			return 0, nil
		}
	}
	return wholeQuantity(c.Name, name, q, limit)
}

// wholeQuantity checks that q is a whole number from 0 to limit and returns
// it. container and name are for the error.
func wholeQuantity(container string, name corev1.ResourceName, q resource.Quantity, limit int64) (int64, error) {
	if q.Sign() < 0 {
		return 0, fmt.Errorf("container %q: %s must not be negative, got %s", container, name, q.String())
	}
	if q.Cmp(*resource.NewQuantity(limit, resource.DecimalSI)) > 0 {
		return 0, fmt.Errorf("container %q: %s is too large, got %s (at most %d)", container, name, q.String(), limit)
	}
	// 0 <= q <= limit: MilliValue cannot overflow.
	if q.MilliValue()%1000 != 0 {
		return 0, fmt.Errorf("container %q: %s must be a whole number, got %s", container, name, q.String())
	}
	return q.Value(), nil
}

// ParseGPUModels reads the optional gpu-models annotation from a pod's
// annotations: nil when it is absent.
func ParseGPUModels(annotations map[string]string) ([]string, error) {
	s, ok := annotations[AnnotationGPUModels]
	if !ok {
		return nil, nil
	}
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			return nil, fmt.Errorf("annotation %s=%q has an empty model name", AnnotationGPUModels, s)
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseEnforcement reads the optional enforcement annotation from a pod's
// annotations: "" when it is absent.
func ParseEnforcement(annotations map[string]string) (Enforcement, error) {
	s, ok := annotations[AnnotationEnforcement]
	if !ok {
		return "", nil
	}
	if e := Enforcement(s); e.Known() {
		return e, nil
	}
	return "", fmt.Errorf("annotation %s=%q: must be one of %v", AnnotationEnforcement, s, Enforcements())
}

// IsTerminal reports whether a pod is in a terminal phase (Succeeded or
// Failed): its containers no longer run and it holds no GPU share.
func IsTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}
