package deviceplugin

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/api"
)

// Kind is one of the three resources the plugin serves.
type Kind int

// The kinds, in the order of Kinds.
const (
	KindMem Kind = iota
	KindCore
	KindSlot
	numKinds
)

// Kinds returns every kind, in order. It is a function so that no caller
// can change the list.
func Kinds() [numKinds]Kind { return [numKinds]Kind{KindMem, KindCore, KindSlot} }

var kindTags = [numKinds]string{"mem", "core", "slot"}
var kindResources = [numKinds]string{api.ResourceGPUMem, api.ResourceGPUCore, api.ResourceGPUCount}

func (k Kind) String() string { return kindTags[k] }

// Resource returns the extended resource name of the kind.
func (k Kind) Resource() string { return kindResources[k] }

// KindOf returns the kind of an extended resource name.
func KindOf(resource string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.Resource() == resource {
			return k, true
		}
	}
	return 0, false
}

// idSep separates the GPU UUID from the unit inside a device ID. NVML UUIDs
// ("GPU-<hex and dashes>") never contain it.
const idSep = "::"

// DeviceID returns the device ID of unit n (0-based) of kind k on GPU uuid:
// "<uuid>::mem-<n>", "<uuid>::core-<n>" or "<uuid>::slot-<n>".
func DeviceID(uuid string, k Kind, n int64) string {
	return uuid + idSep + kindTags[k] + "-" + strconv.FormatInt(n, 10)
}

// ParseDeviceID splits a device ID into GPU UUID, kind and unit.
func ParseDeviceID(id string) (string, Kind, int64, error) {
	i := strings.LastIndex(id, idSep)
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("device ID %q: no GPU part", id)
	}
	uuid, unit := id[:i], id[i+len(idSep):]
	tag, num, ok := strings.Cut(unit, "-")
	if !ok {
		return "", 0, 0, fmt.Errorf("device ID %q: bad unit %q", id, unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return "", 0, 0, fmt.Errorf("device ID %q: bad unit number %q", id, num)
	}
	for _, k := range Kinds() {
		if kindTags[k] == tag {
			return uuid, k, n, nil
		}
	}
	return "", 0, 0, fmt.Errorf("device ID %q: unknown kind %q", id, tag)
}

// MaxListAndWatchBytes is the largest ListAndWatch message the plugin sends:
// a quarter of kubelet's 4 MiB gRPC receive limit.
const MaxListAndWatchBytes = 1 << 20

// Units returns how many units of kind k a GPU offers.
func (g *GPUState) Units(k Kind) int64 {
	switch k {
	case KindMem:
		return g.Slices
	case KindCore:
		return api.CoreUnitsPerGPU
	default:
		return g.Slots
	}
}

// BuildDevices returns the ListAndWatch devices of kind k for the GPUs.
func BuildDevices(gpus []GPUState, k Kind) []*pluginapi.Device {
	n := int64(0)
	for i := range gpus {
		n += gpus[i].Units(k)
	}
	out := make([]*pluginapi.Device, 0, n)
	for i := range gpus {
		g := &gpus[i]
		health := pluginapi.Healthy
		if !g.Healthy {
			health = pluginapi.Unhealthy
		}
		var topo *pluginapi.TopologyInfo
		if g.NUMANode >= 0 {
			topo = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(g.NUMANode)}}}
		}
		for u := int64(0); u < g.Units(k); u++ {
			out = append(out, &pluginapi.Device{ID: DeviceID(g.UUID, k, u), Health: health, Topology: topo})
		}
	}
	return out
}

// CheckMessageSize fails when a ListAndWatch message of kind k for these
// GPUs would exceed MaxListAndWatchBytes.
func CheckMessageSize(gpus []GPUState, k Kind) (int, error) {
	size := proto.Size(&pluginapi.ListAndWatchResponse{Devices: BuildDevices(gpus, k)})
	if size > MaxListAndWatchBytes {
		return size, fmt.Errorf("%s: ListAndWatch message of %d bytes exceeds the %d byte budget (kubelet's limit is 4 MiB); use a larger slice size or fewer slots", k.Resource(), size, MaxListAndWatchBytes)
	}
	return size, nil
}
