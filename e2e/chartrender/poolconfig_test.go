package chartrender

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/deviceplugin/config"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

func ptr[T any](v T) *T { return &v }

// withConfig sets the first pool's config of pool-values v.
func withConfig(v map[string]any, cfg map[string]any) map[string]any {
	v["devicePlugin"].(map[string]any)["pools"].([]any)[0].(map[string]any)["config"] = cfg
	return v
}

// poolFile returns the DaemonSet's --config path and that file's content,
// as the container sees it: the sharing ConfigMap's key mounted there.
func poolFile(t *testing.T, objs []Object, daemonSet string) (file, data string) {
	t.Helper()
	ds, _ := find(objs, "DaemonSet", daemonSet).(*appsv1.DaemonSet)
	if ds == nil {
		t.Fatalf("no DaemonSet %s", daemonSet)
	}
	spec := ds.Spec.Template.Spec
	ctr := spec.Containers[0]
	for _, a := range ctr.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			file = v
		}
	}
	if file == "" {
		t.Fatalf("%s: no --config in %v", daemonSet, ctr.Args)
	}
	var volume string
	for _, m := range ctr.VolumeMounts {
		if m.MountPath == path.Dir(file) {
			volume = m.Name
		}
	}
	cmName := ""
	for _, v := range spec.Volumes {
		if v.Name == volume && v.ConfigMap != nil && len(v.ConfigMap.Items) == 0 {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName == "" {
		t.Fatalf("%s: --config=%s is not in a mounted ConfigMap (mounts %+v)", daemonSet, file, ctr.VolumeMounts)
	}
	cm, _ := find(objs, "ConfigMap", cmName).(*corev1.ConfigMap)
	if cm == nil {
		t.Fatalf("%s: ConfigMap %s is not rendered", daemonSet, cmName)
	}
	data, ok := cm.Data[path.Base(file)]
	if !ok {
		t.Fatalf("%s: ConfigMap %s has no key %s for --config=%s", daemonSet, cmName, path.Base(file), file)
	}
	return file, data
}

// poolConfig decodes the DaemonSet's config file with the device plugin's
// own strict decoder.
func poolConfig(t *testing.T, objs []Object, daemonSet string) *config.FileConfig {
	t.Helper()
	file, data := poolFile(t, objs, daemonSet)
	fc, err := config.DecodeConfigFile([]byte(data))
	if err != nil {
		t.Fatalf("%s: config file %s does not decode: %v\n%s", daemonSet, file, err, data)
	}
	return fc
}

// TestPoolConfigs renders the chart and decodes every pool's
// DevicePluginConfig the way the device plugin does (strictly: unknown
// fields, wrong types and values out of range are errors), and checks that
// its slice size is the extender's, from the same values.
func TestPoolConfigs(t *testing.T) {
	header := func(fc config.FileConfig) *config.FileConfig {
		fc.APIVersion, fc.Kind = config.ConfigAPIVersion, config.ConfigKind
		return &fc
	}
	twoPools := map[string]any{
		"sharing": map[string]any{"sliceMiB": 2048},
		"mps":     map[string]any{"scope": "node", "clientCap": 16, "defaultThreadPercentage": 50},
		"devicePlugin": map[string]any{"mpsRoot": "/run/gs-mps", "pools": []any{
			map[string]any{"name": "a100", "nodeSelector": map[string]any{"pool": "a100"}, "isolation": "mps", "slotsPerGPU": 4, "deviceListStrategy": "cdi", "nvmlAccess": "privileged",
				"config": map[string]any{"mps": map[string]any{"version": 3, "maxClientMemoryPercent": 25, "maxClientThreadPercentage": 50, "devShm": "per-daemon"}}},
			map[string]any{"name": "t4", "nodeSelector": map[string]any{"pool": "t4"}, "isolation": "none", "slotsPerGPU": 8, "deviceListStrategy": "volume-mounts", "nvmlAccess": "env",
				"config": map[string]any{"cdiKind": "example.com/gpu"}},
		}},
	}
	tests := []struct {
		name   string
		values map[string]any
		want   map[string]*config.FileConfig // DaemonSet name -> decoded config
	}{{
		name: "defaults",
		want: map[string]*config.FileConfig{
			"gpuslice-device-plugin-default": header(config.FileConfig{SliceMiB: ptr[int64](1024), Isolation: ptr("none"), SlotsPerGPU: ptr[int64](4), DeviceListStrategy: ptr("cdi")}),
		},
	}, {
		name:   "an MPS pool and a shared pool, with extra fields",
		values: twoPools,
		want: map[string]*config.FileConfig{
			"gpuslice-device-plugin-a100": header(config.FileConfig{SliceMiB: ptr[int64](2048), Isolation: ptr("mps"), DeviceListStrategy: ptr("cdi"),
				MPS: config.MPSFile{Version: ptr(3), Root: ptr("/run/gs-mps"), ControlBinary: ptr("nvidia-cuda-mps-control"), Scope: ptr("node"), ClientCap: ptr[int64](16),
					DefaultActiveThreadPercentage: ptr(50), MaxClientMemoryPercent: ptr(25), MaxClientThreadPercentage: ptr(50), DevShm: ptr("per-daemon")}}),
			"gpuslice-device-plugin-t4": header(config.FileConfig{SliceMiB: ptr[int64](2048), Isolation: ptr("none"), SlotsPerGPU: ptr[int64](8),
				DeviceListStrategy: ptr("volume-mounts"), CDIKind: ptr("example.com/gpu")}),
		},
	}, {
		name: "a vGPU pool with its sizing",
		values: map[string]any{"devicePlugin": map[string]any{"pools": []any{
			map[string]any{"name": "vm", "nodeSelector": map[string]any{"pool": "vm"}, "isolation": "vgpu", "deviceListStrategy": "cdi", "nvmlAccess": "privileged",
				"config": map[string]any{"vgpuRescanInterval": "10s", "vgpu": map[string]any{"gpus": []any{
					map[string]any{"select": map[string]any{"model": "Tesla T4"}, "mode": "vgpu", "type": "GRID T4-4Q", "instances": 4},
					map[string]any{"select": map[string]any{"bdf": "0000:c1:00.0"}, "mode": "passthrough", "memoryMiB": 16384},
				}}}},
		}}},
		want: map[string]*config.FileConfig{
			"gpuslice-device-plugin-vm": header(config.FileConfig{SliceMiB: ptr[int64](1024), Isolation: ptr("vgpu"), DeviceListStrategy: ptr("cdi"),
				VGPURescanInterval: ptr("10s"), VGPU: &vgpu.NodeConfig{GPUs: []vgpu.GPUConfig{
					{Select: vgpu.Selector{Model: "Tesla T4"}, Mode: vgpu.ModeVGPU, Type: "GRID T4-4Q", Instances: 4},
					{Select: vgpu.Selector{BDF: "0000:c1:00.0"}, Mode: vgpu.ModePassthrough, MemoryMiB: 16384},
				}}}),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderObjects(t, tt.values)
			got := map[string]*config.FileConfig{}
			for _, o := range objs {
				if o.Kind == "DaemonSet" {
					got[o.Name] = poolConfig(t, objs, o.Name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded pool configs (-want +got):\n%s", diff)
			}
			cm := find(objs, "ConfigMap", "gpuslice-sharing").(*corev1.ConfigMap)
			ext := find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			if envFromConfigMap(ext, "GPUSLICE_SLICE_MIB") != "gpuslice-sharing/slice-mib" {
				t.Fatalf("the extender's slice size is not the sharing ConfigMap's slice-mib")
			}
			for ds, fc := range got {
				want, err := strconv.ParseInt(cm.Data["slice-mib"], 10, 64)
				if err != nil || fc.SliceMiB == nil || *fc.SliceMiB != want {
					t.Errorf("%s: sliceMiB %v, the extender's slice-mib %q (%v)", ds, fc.SliceMiB, cm.Data["slice-mib"], err)
				}
			}
			var keys []string
			for k := range cm.Data {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			wantKeys := []string{"slice-mib"}
			for ds := range tt.want {
				wantKeys = append(wantKeys, "pool."+strings.TrimPrefix(ds, "gpuslice-device-plugin-")+".yaml")
			}
			slices.Sort(wantKeys)
			if diff := cmp.Diff(wantKeys, keys); diff != "" {
				t.Errorf("sharing ConfigMap keys (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPoolConfigTyposStopThePlugin: a misspelt field in a pool's config
// renders, but the device plugin's decoder rejects the file (the plugin
// exits with status 2 instead of running with a default).
func TestPoolConfigTyposStopThePlugin(t *testing.T) {
	values := withConfig(map[string]any{"devicePlugin": map[string]any{"pools": []any{map[string]any{
		"name": "p", "nodeSelector": map[string]any{"a": "b"}, "isolation": "mps", "slotsPerGPU": 4, "deviceListStrategy": "cdi", "nvmlAccess": "privileged",
	}}}}, map[string]any{"mps": map[string]any{"maxClientMemoryPercnt": 25}})
	objs := renderObjects(t, values)
	file, data := poolFile(t, objs, "gpuslice-device-plugin-p")
	_, err := config.DecodeConfigFile([]byte(data))
	if err == nil || !strings.Contains(err.Error(), "maxClientMemoryPercnt") || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("decoding %s = %v, want an unknown field error naming maxClientMemoryPercnt\n%s", file, err, data)
	}
}
