package config

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

func ptr[T any](v T) *T { return &v }

const header = "apiVersion: gpuslice.io/v1alpha1\nkind: DevicePluginConfig\n"

func TestDecodeConfigFileExample(t *testing.T) {
	data, err := os.ReadFile("testdata/config-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeConfigFile(data)
	if err != nil {
		t.Fatalf("DecodeConfigFile: %v", err)
	}
	want := &FileConfig{
		APIVersion: ConfigAPIVersion, Kind: ConfigKind,
		SliceMiB: ptr[int64](512), Isolation: ptr("mps"), SlotsPerGPU: ptr[int64](16),
		DeviceListStrategy: ptr("cdi"), CDIKind: ptr("nvidia.com/gpu"),
		HostDevices: []hostdev.Device{{Name: "fuse", Path: "/dev/fuse", Permissions: "rw", Count: 32}},
		MPS: MPSFile{
			Root: ptr("/run/gpuslice/mps"), ControlBinary: ptr("nvidia-cuda-mps-control"),
			ContainerPipeDir: ptr("/run/gpuslice/mps"), Scope: ptr("gpu"), ClientCap: ptr[int64](0),
			DefaultActiveThreadPercentage: ptr(50), MaxClientMemoryPercent: ptr(50), MaxClientThreadPercentage: ptr(50),
			DevShm: ptr("per-daemon"), MultiUserServer: ptr(false), ReadOnlyPipeMount: ptr(false),
			HealthInterval: ptr("10s"), ProbeTimeout: ptr("5s"), MaxRestartBackoff: ptr("5m"),
		},
		VGPU: &vgpu.NodeConfig{GPUs: []vgpu.GPUConfig{
			{Select: vgpu.Selector{Model: "Tesla T4"}, Mode: vgpu.ModeVGPU, Type: "GRID T4-4Q", Instances: 4},
			{Select: vgpu.Selector{BDF: "0000:81:00.0"}, Mode: vgpu.ModePassthrough, BindVFIO: true, MemoryMiB: 81920},
		}},
		SysfsRoot: ptr("/sys"), CDIDir: ptr("/var/run/cdi"), VGPURescanInterval: ptr("30s"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("example (-want +got):\n%s", diff)
	}
}

func TestDecodeConfigFileMinimal(t *testing.T) {
	for _, doc := range []string{header, `{"apiVersion":"gpuslice.io/v1alpha1","kind":"DevicePluginConfig","mps":null,"vgpu":null}`} {
		got, err := DecodeConfigFile([]byte(doc))
		if err != nil {
			t.Fatalf("DecodeConfigFile(%q): %v", doc, err)
		}
		if diff := cmp.Diff(&FileConfig{APIVersion: ConfigAPIVersion, Kind: ConfigKind}, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", doc, diff)
		}
	}
}

func TestDecodeConfigFileMPSVersion(t *testing.T) {
	tests := []struct {
		doc  string
		want *int
	}{
		{doc: header, want: nil},
		{doc: header + "mps:\n  version: 2\n", want: ptr(2)},
		{doc: header + "mps:\n  version: 3\n", want: ptr(3)},
	}
	for _, tc := range tests {
		got, err := DecodeConfigFile([]byte(tc.doc))
		if err != nil {
			t.Fatalf("DecodeConfigFile(%q): %v", tc.doc, err)
		}
		if diff := cmp.Diff(tc.want, got.MPS.Version); diff != "" {
			t.Errorf("%q: mps.version (-want +got):\n%s", tc.doc, diff)
		}
	}
}

func TestDecodeConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "empty document"},
		{"not a mapping", "- a\n", "the document must be a mapping, got array"},
		{"bad yaml", "a: [\n", "not valid YAML"},
		{"no apiVersion", "kind: DevicePluginConfig\n", `apiVersion: want "gpuslice.io/v1alpha1", got ""`},
		{"wrong apiVersion", "apiVersion: gpuslice.io/v1\nkind: DevicePluginConfig\n", `apiVersion: want "gpuslice.io/v1alpha1", got "gpuslice.io/v1"`},
		{"wrong kind", "apiVersion: gpuslice.io/v1alpha1\nkind: ExtenderConfig\n", `kind: want "DevicePluginConfig", got "ExtenderConfig"`},
		{"unknown top field", header + "sliceMib: 512\n", "sliceMib: unknown field"},
		{"unknown mps field", header + "mps:\n  maxClientMemory: 50\n", "mps.maxClientMemory: unknown field"},
		{"miscased field", header + "mps:\n  MaxClientMemoryPercent: 50\n", "mps.MaxClientMemoryPercent: unknown field"},
		{"duplicate field", header + "sliceMiB: 512\nsliceMiB: 1024\n", "not valid YAML"},
		{"string for int", header + "mps:\n  maxClientMemoryPercent: \"50\"\n", "mps.maxClientMemoryPercent: want an integer, got string"},
		{"int for bool", header + "mps:\n  multiUserServer: 1\n", "mps.multiUserServer: want true or false, got number"},
		{"float for int", header + "sliceMiB: 1.5\n", "sliceMiB: want an integer, got number"},
		{"scalar for section", header + "mps: 3\n", "mps: want a mapping, got number"},
		{"memory out of range", header + "mps:\n  maxClientMemoryPercent: 150\n", "mps.maxClientMemoryPercent: must be 1..100, got 150"},
		{"memory zero", header + "mps:\n  maxClientMemoryPercent: 0\n", "mps.maxClientMemoryPercent: must be 1..100, got 0"},
		{"default above max", header + "mps:\n  defaultActiveThreadPercentage: 80\n  maxClientThreadPercentage: 50\n", "mps.defaultActiveThreadPercentage: 80 is above mps.maxClientThreadPercentage 50"},
		{"threads out of range", header + "mps:\n  maxClientThreadPercentage: 101\n", "mps.maxClientThreadPercentage: must be 1..100, got 101"},
		{"default threads out of range", header + "mps:\n  defaultActiveThreadPercentage: -1\n", "mps.defaultActiveThreadPercentage: must be 1..100, got -1"},
		{"client cap", header + "mps:\n  clientCap: 61\n", "mps.clientCap: must be 0..60"},
		{"scope", header + "mps:\n  scope: rack\n", `mps.scope: must be "gpu" or "node", got "rack"`},
		{"mps version", header + "mps:\n  version: 4\n", "mps.version: must be 2 (legacy MPS) or 3 (MPS v3), got 4"},
		{"mps version string", header + "mps:\n  version: \"3\"\n", "mps.version: want an integer, got string"},
		{"dev shm", header + "mps:\n  devShm: private\n", `mps.devShm: must be "per-daemon" or "none", got "private"`},
		{"relative root", header + "mps:\n  root: run/mps\n", `mps.root: must be an absolute path, got "run/mps"`},
		{"pipe dir shm", header + "mps:\n  containerPipeDir: /dev/shm/\n", "mps.containerPipeDir: must not be /dev/shm"},
		{"bad duration", header + "mps:\n  healthInterval: soon\n", `mps.healthInterval: must be a duration such as "10s", got "soon"`},
		{"negative duration", header + "mps:\n  probeTimeout: -1s\n", `mps.probeTimeout: must be positive, got "-1s"`},
		{"slice too small", header + "sliceMiB: 64\n", "sliceMiB: must be at least 256, got 64"},
		{"isolation", header + "isolation: mig\n", `isolation: must be one of [none mps vgpu], got "mig"`},
		{"sysfs root", header + "sysfsRoot: sys\n", `sysfsRoot: must be an absolute path, got "sys"`},
		{"rescan interval", header + "vgpuRescanInterval: 0s\n", `vgpuRescanInterval: must be a positive duration`},
		{"vgpu memory on vgpu", header + "vgpu:\n  gpus:\n  - select: {index: 0}\n    mode: vgpu\n    type: x\n    instances: 1\n    memoryMiB: 5\n", "gpus[0].memoryMiB: only for mode passthrough"},
		{"slots", header + "slotsPerGPU: 0\n", "slotsPerGPU: must be positive, got 0"},
		{"strategy", header + "deviceListStrategy: env\n", `deviceListStrategy: must be one of [envvar volume-mounts cdi], got "env"`},
		{"cdi kind", header + "cdiKind: nvidia.com\n", `cdiKind: CDI kind "nvidia.com": want vendor/class`},
		{"host device path", header + "hostDevices:\n- {name: fuse, path: /etc/fuse, count: 1}\n", `hostDevices[0]: path: must be a clean absolute path under /dev/, got "/etc/fuse"`},
		{"host device count", header + "hostDevices:\n- {name: fuse, path: /dev/fuse, count: 0}\n", "hostDevices[0]: count: must be 1..1024, got 0"},
		{"host device twice", header + "hostDevices:\n- {name: fuse, path: /dev/fuse, count: 1}\n- {name: fuse, path: /dev/fuse, count: 2}\n", `hostDevices[1].name: "fuse" is listed twice`},
		{"host device unknown field", header + "hostDevices:\n- {name: fuse, pth: /dev/fuse, count: 1}\n", `hostDevices[0].pth: unknown field`},
		{"vgpu unknown field", header + "vgpu:\n  gpus:\n  - select: {index: 0}\n    mode: none\n    instnces: 2\n", `vgpu: vGPU config: unknown field "gpus[0].instnces"`},
		{"vgpu invalid", header + "vgpu:\n  gpus:\n  - select: {index: 0}\n    mode: vgpu\n", "vgpu: vGPU config: gpus[0].type: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeConfigFile([]byte(tc.doc))
			if err == nil {
				t.Fatalf("DecodeConfigFile = %+v, want error %q", got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeConfigFileReportsEveryBadField(t *testing.T) {
	_, err := DecodeConfigFile([]byte(header + "sliceMiB: 1\nmps:\n  maxClientMemoryPercent: 150\n"))
	for _, want := range []string{"sliceMiB:", "mps.maxClientMemoryPercent:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %s", err, want)
		}
	}
}

func FuzzDecodeConfigFile(f *testing.F) {
	example, err := os.ReadFile("testdata/config-example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(header))
	f.Add([]byte(header + "mps:\n  maxClientMemoryPercent: 150\n"))
	f.Add([]byte(header + "mps: [1]\nvgpu: {gpus: [{select: {}}]}\n"))
	f.Add([]byte(`{"apiVersion":"gpuslice.io/v1alpha1","kind":"DevicePluginConfig","sliceMiB":1e99}`))
	f.Add([]byte(header + "hostDevices:\n- {name: fuse, path: /dev/fuse, permissions: rwm, count: 1024}\n- {name: x, path: /dev/../etc, count: -1}\n"))
	f.Add([]byte(header + "cdiKind: a.b/c\nhostDevices: {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := DecodeConfigFile(data)
		if err != nil {
			msg := err.Error()
			if msg == "" || !utf8.ValidString(msg) || strings.HasPrefix(msg, "json:") {
				t.Fatalf("unclear error %q", msg)
			}
			return
		}
		if fc.APIVersion != ConfigAPIVersion || fc.Kind != ConfigKind {
			t.Fatalf("accepted %q/%q", fc.APIVersion, fc.Kind)
		}
		// What the decoder accepts, it accepts again.
		if err := fc.validate(); err != nil {
			t.Fatalf("decoded %q, but validate: %v", data, err)
		}
	})
}
