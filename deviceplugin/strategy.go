package deviceplugin

import (
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// Strategy is how a container is told which GPUs it gets; the NVIDIA
// container toolkit then injects them. See docs/device-plugin.md for the
// security notes of each.
type Strategy string

// Strategies.
const (
	// StrategyEnvVar sets NVIDIA_VISIBLE_DEVICES=<uuids>. An unprivileged
	// pod can set that variable itself and see any GPU unless the toolkit's
	// accept-nvidia-visible-devices-envvar-when-unprivileged is false. An
	// explicit opt-in: the plugin warns at start.
	StrategyEnvVar Strategy = "envvar"
	// StrategyVolumeMounts mounts /dev/null at
	// /var/run/nvidia-container-devices/<uuid> per GPU (the toolkit's
	// accept-nvidia-visible-devices-as-volume-mounts); pods cannot forge it.
	StrategyVolumeMounts Strategy = "volume-mounts"
	// StrategyCDI returns CDI device names (<kind>=<uuid>) in CdiDevices
	// (kubelet >= 1.31 passes them to the runtime); pods cannot forge them.
	// The default.
	StrategyCDI Strategy = "cdi"
)

// Strategies lists the known strategies.
func Strategies() []Strategy { return []Strategy{StrategyEnvVar, StrategyVolumeMounts, StrategyCDI} }

// Known reports whether s is a known strategy.
func (s Strategy) Known() bool { return slices.Contains(Strategies(), s) }

// Container paths and variables of the NVIDIA container toolkit.
const (
	EnvNVIDIAVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	EnvCUDAVisibleDevices   = "CUDA_VISIBLE_DEVICES"
	VolumeMountsRoot        = "/var/run/nvidia-container-devices"
)

// CDIName is the qualified CDI device name of the GPU uuid under kind
// (vendor/class=uuid); package deviceplugin/cdi checks at start that the
// node's specs resolve it.
func CDIName(kind, uuid string) string { return kind + "=" + uuid }

// containerResponse builds the Allocate response of a container that gets
// the GPUs uuids, in CUDA order, plus the isolator's edits. Exclusive edits
// (VFIO instances) replace the strategy's NVIDIA toolkit edits.
func containerResponse(s Strategy, cdiKind string, uuids []string, iso *device.ContainerEdits) *pluginapi.ContainerAllocateResponse {
	r := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
	if iso != nil && iso.Exclusive {
		addEdits(r, iso)
		return r
	}
	switch s {
	case StrategyEnvVar:
		r.Envs[EnvNVIDIAVisibleDevices] = strings.Join(uuids, ",")
	case StrategyVolumeMounts:
		r.Envs[EnvNVIDIAVisibleDevices] = VolumeMountsRoot
		for _, u := range uuids {
			r.Mounts = append(r.Mounts, &pluginapi.Mount{ContainerPath: path.Join(VolumeMountsRoot, u), HostPath: "/dev/null", ReadOnly: true})
		}
	case StrategyCDI:
		// "void" keeps a legacy-mode toolkit hook from adding GPUs of its
		// own (for example NVIDIA_VISIBLE_DEVICES=all baked into CUDA images).
		r.Envs[EnvNVIDIAVisibleDevices] = "void"
		for _, u := range uuids {
			r.CdiDevices = append(r.CdiDevices, &pluginapi.CDIDevice{Name: CDIName(cdiKind, u)})
		}
	}
	// CUDA accepts UUIDs here; listing them fixes the CUDA order to the
	// placement's order whatever order the runtime exposes the GPUs in.
	r.Envs[EnvCUDAVisibleDevices] = strings.Join(uuids, ",")
	if iso != nil {
		addEdits(r, iso)
	}
	return r
}

// addEdits merges an isolator's edits into r: environment, mounts (by
// container path), device nodes and CDI devices (in the isolator's order).
func addEdits(r *pluginapi.ContainerAllocateResponse, iso *device.ContainerEdits) {
	for _, k := range slices.Sorted(maps.Keys(iso.Envs)) {
		r.Envs[k] = iso.Envs[k]
	}
	ms := slices.Clone(iso.Mounts)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].ContainerPath < ms[j].ContainerPath })
	for _, m := range ms {
		r.Mounts = append(r.Mounts, &pluginapi.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	for _, d := range iso.Devices {
		r.Devices = append(r.Devices, &pluginapi.DeviceSpec{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
	}
	for _, n := range iso.CDIDevices {
		r.CdiDevices = append(r.CdiDevices, &pluginapi.CDIDevice{Name: n})
	}
}
