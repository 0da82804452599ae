package deviceplugin

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

func TestDeviceIDRoundTrip(t *testing.T) {
	for _, k := range Kinds() {
		id := DeviceID("GPU-5fd2a8c4-1d2e-4a4b-9c11-0123456789ab", k, 42)
		u, kind, n, err := ParseDeviceID(id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{"GPU-5fd2a8c4-1d2e-4a4b-9c11-0123456789ab", k, int64(42)}, []any{u, kind, n}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", id, diff)
		}
	}
	for _, bad := range []string{"", "::mem-1", "GPU-1::mem", "GPU-1::mem-x", "GPU-1::disk-1", "GPU-1::mem--1"} {
		if _, _, _, err := ParseDeviceID(bad); err == nil {
			t.Errorf("ParseDeviceID(%q) succeeded", bad)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, k := range Kinds() {
		if got, ok := KindOf(k.Resource()); !ok || got != k {
			t.Errorf("KindOf(%q) = %v, %v", k.Resource(), got, ok)
		}
	}
	if _, ok := KindOf("nvidia.com/gpu"); ok {
		t.Error("KindOf(nvidia.com/gpu) succeeded")
	}
}

// TestMessageSize: 8 x 141 GB GPUs at the smallest slice size fit well under
// kubelet's 4 MiB limit; a node far beyond that is refused.
func TestMessageSize(t *testing.T) {
	ctx := context.Background()
	iso := NoIsolation{SlotsPerGPU: 60}
	h200 := testGPUs(8, 143771)
	for i := range h200 {
		h200[i].UUID = "GPU-5fd2a8c4-1d2e-4a4b-9c11-0123456789a" + string(rune('0'+i))
	}
	gpus, err := BuildGPUs(ctx, h200, api.MinSliceMiB, iso)
	if err != nil {
		t.Fatalf("8 x H200 at %d MiB: %v", api.MinSliceMiB, err)
	}
	size, err := CheckMessageSize(gpus, KindMem)
	if err != nil {
		t.Fatal(err)
	}
	if size > 1<<20 {
		t.Errorf("gpu-mem message is %d bytes", size)
	}
	t.Logf("8 x H200 at %d MiB: %d gpu-mem device IDs, %d bytes", api.MinSliceMiB, len(BuildDevices(gpus, KindMem)), size)
	huge := testGPUs(64, 143771)
	if _, err := BuildGPUs(ctx, huge, api.MinSliceMiB, iso); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("64 x H200 at %d MiB: %v, want a size error", api.MinSliceMiB, err)
	}
}

func TestBuildDevicesTopologyAndHealth(t *testing.T) {
	iso := NoIsolation{SlotsPerGPU: 2}
	st := testState(t, 2, 2048, iso)
	st.SetHealth(gpuUUID(1), SourceNVML, false, "gone")
	gpus, _ := st.Snapshot()
	got := BuildDevices(gpus, KindSlot)
	numa0 := &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: 0}}}
	want := []*pluginapi.Device{
		{ID: DeviceID(gpuUUID(0), KindSlot, 0), Health: pluginapi.Healthy, Topology: numa0},
		{ID: DeviceID(gpuUUID(0), KindSlot, 1), Health: pluginapi.Healthy, Topology: numa0},
		{ID: DeviceID(gpuUUID(1), KindSlot, 0), Health: pluginapi.Unhealthy, Topology: numa0},
		{ID: DeviceID(gpuUUID(1), KindSlot, 1), Health: pluginapi.Unhealthy, Topology: numa0},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	if n := len(BuildDevices(gpus, KindMem)); n != 4 {
		t.Errorf("%d gpu-mem devices, want 4", n)
	}
	if n := len(BuildDevices(gpus, KindCore)); n != 200 {
		t.Errorf("%d gpu-core devices, want 200", n)
	}
}

func TestStrategies(t *testing.T) {
	uuids := []string{"GPU-b", "GPU-a"}
	iso := &device.ContainerEdits{Envs: map[string]string{"X": "1"}, Mounts: []device.Mount{{ContainerPath: "/p", HostPath: "/h", ReadOnly: true}}}
	tests := []struct {
		s    Strategy
		want *pluginapi.ContainerAllocateResponse
	}{{
		s: StrategyEnvVar,
		want: &pluginapi.ContainerAllocateResponse{
			Envs:   map[string]string{EnvNVIDIAVisibleDevices: "GPU-b,GPU-a", EnvCUDAVisibleDevices: "GPU-b,GPU-a", "X": "1"},
			Mounts: []*pluginapi.Mount{{ContainerPath: "/p", HostPath: "/h", ReadOnly: true}},
		},
	}, {
		s: StrategyVolumeMounts,
		want: &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{EnvNVIDIAVisibleDevices: VolumeMountsRoot, EnvCUDAVisibleDevices: "GPU-b,GPU-a", "X": "1"},
			Mounts: []*pluginapi.Mount{
				{ContainerPath: VolumeMountsRoot + "/GPU-b", HostPath: "/dev/null", ReadOnly: true},
				{ContainerPath: VolumeMountsRoot + "/GPU-a", HostPath: "/dev/null", ReadOnly: true},
				{ContainerPath: "/p", HostPath: "/h", ReadOnly: true},
			},
		},
	}, {
		s: StrategyCDI,
		want: &pluginapi.ContainerAllocateResponse{
			Envs:       map[string]string{EnvNVIDIAVisibleDevices: "void", EnvCUDAVisibleDevices: "GPU-b,GPU-a", "X": "1"},
			Mounts:     []*pluginapi.Mount{{ContainerPath: "/p", HostPath: "/h", ReadOnly: true}},
			CdiDevices: []*pluginapi.CDIDevice{{Name: "nvidia.com/gpu=GPU-b"}, {Name: "nvidia.com/gpu=GPU-a"}},
		},
	}}
	for _, tc := range tests {
		t.Run(string(tc.s), func(t *testing.T) {
			got := containerResponse(tc.s, "nvidia.com/gpu", uuids, iso)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no node", func(c *Config) { c.NodeName = "" }, "node name"},
		{"slice too small", func(c *Config) { c.SliceMiB = 128 }, "below the minimum"},
		{"bad strategy", func(c *Config) { c.Strategy = "magic" }, "unknown device list strategy"},
		{"zero interval", func(c *Config) { c.WatchInterval = 0 }, "positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.edit(&c)
			err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
