package vgpu

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
)

func TestDecodeNodeConfig(t *testing.T) {
	want := NodeConfig{GPUs: []GPUConfig{
		{Select: Selector{Model: "Tesla T4"}, Mode: ModeVGPU, Type: "GRID T4-4Q", Instances: 4},
		{Select: Selector{BDF: "0000:81:00.0"}, Mode: ModePassthrough, BindVFIO: true},
		{Select: Selector{Index: ptr.To(0)}, Mode: ModeNone},
		{Select: Selector{DeviceID: "0x26b5"}, Mode: ModeVGPU, Type: "557", Instances: 2},
	}}
	for name, in := range map[string]string{
		"yaml": readTestdata(t, "decode.yaml"),
		"json": `{"gpus": [
 {"select": {"model": "Tesla T4"}, "mode": "vgpu", "type": "GRID T4-4Q", "instances": 4},
 {"select": {"bdf": "0000:81:00.0"}, "mode": "passthrough", "bindVFIO": true},
 {"select": {"index": 0}, "mode": "none"},
 {"select": {"deviceID": "0x26b5"}, "mode": "vgpu", "type": "557", "instances": 2}]}`,
	} {
		got, err := DecodeNodeConfig([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
}

func TestDecodeNodeConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"gpus:\n- select: {bdf: 0000:41:00.0}\n  mode: vgpu\n  type: x\n  instnces: 2\n", `unknown field "gpus[0].instnces"`},
		{"gpu: []\n", `unknown field "gpu"`},
		{"gpus:\n- select: {index: 0}\n  mode: none\n  mode: vgpu\n", `"mode" already set`},
		{"gpus:\n- select: {index: 0}\n  mode: vgpu\n  type: x\n  instances: four\n", "instances"},
		{"gpus:\n- select: {index: 0}\n  mode: vgpu\n  type: x\n", "gpus[0].instances: must be at least 1"},
		{"gpus:\n- select: {index: 0}\n  mode: vgpu\n  instances: 1\n", "gpus[0].type: required"},
		{"gpus:\n- select: {index: 0}\n  mode: vgpus\n", `gpus[0].mode: unknown mode "vgpus"`},
		{"gpus:\n- select: {index: 0}\n", "gpus[0].mode: required"},
		{"gpus:\n- select: {}\n  mode: none\n", "gpus[0].select: set exactly one"},
		{"gpus:\n- select: {index: 0, bdf: 41:00.0}\n  mode: none\n", "gpus[0].select: set exactly one of index, bdf, deviceID, model (2 set)"},
		{"gpus:\n- select: {index: -1}\n  mode: none\n", "gpus[0].select.index: -1 is negative"},
		{"gpus:\n- select: {bdf: 41-00-0}\n  mode: none\n", `gpus[0].select.bdf: "41-00-0" is not a PCI address`},
		{"gpus:\n- select: {deviceID: nvidia}\n  mode: none\n", `gpus[0].select.deviceID: "nvidia" is not a PCI device id`},
		{"gpus:\n- select: {index: 0}\n  mode: none\n  type: x\n", "gpus[0].type: only for mode vgpu"},
		{"gpus:\n- select: {index: 0}\n  mode: passthrough\n  instances: 2\n", "gpus[0].instances: only for mode vgpu"},
		{"gpus:\n- select: {index: 0}\n  mode: vgpu\n  type: x\n  instances: 1\n  bindVFIO: true\n", "gpus[0].bindVFIO: only for mode passthrough"},
		{"gpus:\n- select: {index: 0}\n  mode: none\n- select: {index: 1}\n  mode: none\n- select: {index: 0}\n  mode: none\n",
			"gpus[2].select: index 0 is already selected by gpus[0]"},
		{"gpus:\n- select: {bdf: 41:00.0}\n  mode: none\n- select: {bdf: 0000:41:00.0}\n  mode: none\n",
			"gpus[1].select: bdf 0000:41:00.0 is already selected by gpus[0]"},
	} {
		_, err := DecodeNodeConfig([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeNodeConfig(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}
