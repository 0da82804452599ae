// Package deviceplugin owns the node half of gpuslice: a kubelet device
// plugin that advertises gpuslice.io/gpu-mem, gpu-core and gpu-count as
// device IDs that encode the physical GPU, and hands every container exactly
// the GPU(s) its pod's placement (written by the scheduler extender) names.
//
// It owns:
//   - the device ID scheme and the ListAndWatch device lists (ids.go);
//   - the hand-off from kubelet's identity-less GetPreferredAllocation /
//     Allocate / PreStartContainer calls to the (pod, container) they are
//     for (handoff.go), and the reconcile with kubelet's pod-resources API
//     that keeps the pod's recorded placement equal to what kubelet gave
//     (reconcile.go);
//   - the container-edit strategies (CDI, volume mounts, env) (strategy.go)
//     and the Isolator hook that isolation modes plug into (isolator.go);
//   - the per-resource gRPC servers, registration with kubelet and
//     re-registration when kubelet or the plugin socket restarts (server.go,
//     register.go);
//   - GPU state and the node inventory annotation (state.go, inventory.go);
//   - the wiring of all of the above (plugin.go).
//
// NVML discovery lives in deviceplugin/nvml, GPU health in deviceplugin/health
// and client-go adapters in deviceplugin/kube. See docs/device-plugin.md.
package deviceplugin
