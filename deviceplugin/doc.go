// Package deviceplugin owns the node half of gpuslice: a kubelet device
// plugin that advertises gpuslice.io/gpu-mem, gpu-core and gpu-count as
// device IDs that encode the physical GPU, and hands every container exactly
// the GPU(s) its pod's placement (written by the scheduler extender) names.
//
// It owns:
//   - the device ID scheme and the ListAndWatch device lists (ids.go);
//   - the hand-off from kubelet's identity-less GetPreferredAllocation /
//     Allocate / PreStartContainer calls to the (pod, container) they are
//     for: an I/O shell (snapshot.go: pods, pod-resources and the ledger
//     into candidates, candidate.go) around a pure matcher (match.go, which
//     lists its rules, the bypass rule and the ranking order), with one file
//     per call (preferred.go, allocate.go, prestart.go), the ledger of
//     what this process handed out (ledger.go), and the instance binding of
//     whole-instance GPUs (vgpu, passthrough): a container's gpu-mem IDs
//     lie in one instance no other container holds (instance.go);
//   - the reconcile with kubelet's pod-resources API that keeps each pod's
//     placement and allocation equal to what kubelet gave, swapping twins
//     in one pass (reconcile.go);
//   - the container-edit strategies (CDI, volume mounts, env) (strategy.go)
//     and the no-isolation mode (isolator.go); isolation modes implement
//     device.Isolator (package deviceplugin/device);
//   - the per-resource gRPC servers, registration with kubelet and
//     re-registration when kubelet or the plugin socket restarts (server.go,
//     register.go);
//   - GPU state and the node inventory annotation (state.go);
//   - configuration (config.go) and the wiring of all of the above,
//     including the one loop that forwards every health source into the
//     state (plugin.go).
//
// The shared node-side types live in deviceplugin/device, NVML discovery in
// deviceplugin/nvml, GPU health in deviceplugin/health, MPS isolation in
// deviceplugin/mps, the vGPU and passthrough mode in deviceplugin/vgpu and
// client-go adapters in deviceplugin/kube. See docs/device-plugin.md.
package deviceplugin
