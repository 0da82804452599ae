package extender

import (
	v1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// podRequest reads a pod's gpuslice request (api.ParsePodRequest) with
// the VM-sandbox mode its runtime class maps to in the extender's mapping
// (WithRuntimeClassModes): every verb fits the same request, so a pod that
// runs containers is never placed on a vgpu or passthrough GPU, and a VM
// pod only on GPUs of its mode.
func (e *Extender) podRequest(pod *v1.Pod) (*allocator.PodRequest, error) {
	req, err := api.ParsePodRequest(pod)
	if err != nil {
		return nil, err
	}
	req.Sandbox = e.modes.ModeFor(pod.Spec.RuntimeClassName)
	return req, nil
}
