package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// instanceInventory is a node of 1024 MiB slices with a vgpu GPU (four
// 4 GiB instances of 16 GiB) and a passthrough GPU (one of 16 GiB).
func instanceInventory() *Inventory {
	return &Inventory{Version: InventoryVersion, SliceMiB: 1024, GPUs: []GPU{
		{Index: 0, UUID: "GPU-v", Model: "Tesla T4", MemoryMiB: 16384, Slices: 16, Slots: 4, CoreUnits: 100, Healthy: true,
			Isolation: IsolationVGPU, VGPUType: "GRID T4-4Q", InstanceMiB: 4096},
		{Index: 1, UUID: "GPU-p", Model: "Tesla T4", MemoryMiB: 16384, Slices: 16, Slots: 1, CoreUnits: 100, Healthy: true,
			Isolation: IsolationPassthrough, InstanceMiB: 16384},
	}}
}

func TestValidateInstances(t *testing.T) {
	testValidate(t, instanceInventory, []inventoryCase{
		{name: "valid", change: func(*Inventory) {}},
		{name: "instanceMiB on an mps GPU", change: func(inv *Inventory) { inv.GPUs[0].Isolation = IsolationMPS },
			wantErr: `instanceMiB 4096 on a GPU of isolation "mps"`},
		{name: "instanceMiB on a GPU without a mode", change: func(inv *Inventory) { inv.GPUs[0].Isolation = "" },
			wantErr: "instanceMiB 4096 on a GPU of isolation"},
		{name: "vgpu without instanceMiB", change: func(inv *Inventory) { inv.GPUs[0].InstanceMiB = 0 },
			wantErr: "vgpu GPU without instanceMiB"},
		{name: "vgpu with negative instanceMiB", change: func(inv *Inventory) { inv.GPUs[0].InstanceMiB = -4096 },
			wantErr: "negative capacity"},
		{name: "vgpu without slots", change: func(inv *Inventory) {
			inv.GPUs[0].InstanceMiB, inv.GPUs[0].Slots, inv.GPUs[0].Slices = 0, 0, 0
		}},
		{name: "instance larger than the GPU", change: func(inv *Inventory) {
			inv.GPUs[0].InstanceMiB, inv.GPUs[0].Slots, inv.GPUs[0].Slices = 32768, 1, 32
		}, wantErr: "instanceMiB 32768 is more than the GPU's 16384 MiB"},
		{name: "passthrough of two slots", change: func(inv *Inventory) {
			inv.GPUs[1].InstanceMiB, inv.GPUs[1].Slots, inv.GPUs[1].Slices = 8192, 2, 16
		}, wantErr: "a passthrough GPU is one instance, got 2 slots"},
		{name: "slices not slots times instance", change: func(inv *Inventory) { inv.GPUs[0].Slices = 15 },
			wantErr: "15 slices, want 4 instances of 4 slices"},
		{name: "instance not a whole number of slices", change: func(inv *Inventory) {
			// 3 GiB instances on 2 GiB slices: each holds one slice.
			inv.SliceMiB = 2048
			inv.GPUs[0].InstanceMiB, inv.GPUs[0].Slots, inv.GPUs[0].Slices = 3072, 5, 5
			inv.GPUs[1].Slices = 8
		}},
		{name: "passthrough slices short of the GPU", change: func(inv *Inventory) { inv.GPUs[1].Slices = 8 },
			wantErr: "8 slices, want 1 instances of 16 slices"},
	})
}

func TestInstanceUnits(t *testing.T) {
	inv := instanceInventory()
	mps := GPU{Isolation: IsolationMPS, Slices: 16, Slots: 48, CoreUnits: 100}
	three := GPU{Isolation: IsolationVGPU, InstanceMiB: 5120, Slots: 3, Slices: 15, CoreUnits: 100}
	tests := []struct {
		name     string
		gpu      *GPU
		sliceMiB int64
		want     Units
	}{
		{"vgpu", &inv.GPUs[0], 1024, Units{Slices: 4, Core: 25, Slots: 1}},
		{"vgpu on 512 MiB slices", &inv.GPUs[0], 512, Units{Slices: 8, Core: 25, Slots: 1}},
		{"passthrough", &inv.GPUs[1], 1024, Units{Slices: 16, Core: 100, Slots: 1}},
		{"core split evenly, rounded down", &three, 1024, Units{Slices: 5, Core: 33, Slots: 1}},
		{"shared mode", &mps, 1024, Units{}},
		{"bad slice size", &inv.GPUs[0], 0, Units{}},
		{"no slots", &GPU{Isolation: IsolationVGPU, InstanceMiB: 4096}, 1024, Units{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.gpu.InstanceUnits(tc.sliceMiB)); diff != "" {
				t.Errorf("InstanceUnits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChargeOf(t *testing.T) {
	inst := Units{Slices: 4, Core: 25, Slots: 1}
	tests := []struct {
		name     string
		inst     Units
		share    Units
		wantFits bool
		want     Units
	}{
		{"shared GPU charges the share", Units{}, Units{Slices: 3, Core: 10, Slots: 1}, true, Units{Slices: 3, Core: 10, Slots: 1}},
		{"3 GiB in a 4 GiB instance", inst, Units{Slices: 3, Slots: 1}, true, inst},
		{"the whole instance", inst, inst, true, inst},
		{"gpu-mem over the instance", inst, Units{Slices: 5, Slots: 1}, false, inst},
		{"gpu-core over the instance", inst, Units{Slices: 1, Core: 26, Slots: 1}, false, inst},
		{"two slots", inst, Units{Slices: 1, Slots: 2}, false, inst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FitsInstance(tc.inst, tc.share); got != tc.wantFits {
				t.Errorf("FitsInstance = %v, want %v", got, tc.wantFits)
			}
			if diff := cmp.Diff(tc.want, ChargeOf(tc.inst, tc.share)); diff != "" {
				t.Errorf("ChargeOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRuntimeClassModes(t *testing.T) {
	tests := []struct {
		in      string
		want    RuntimeClassModes
		wantErr string
	}{
		{in: "", want: RuntimeClassModes{}},
		{in: "  ", want: RuntimeClassModes{}},
		{in: "kata-vgpu=vgpu", want: RuntimeClassModes{"kata-vgpu": IsolationVGPU}},
		{in: "kata-vgpu=vgpu,kubevirt=passthrough", want: RuntimeClassModes{"kata-vgpu": IsolationVGPU, "kubevirt": IsolationPassthrough}},
		{in: " kata-vgpu=vgpu , kubevirt=passthrough ", want: RuntimeClassModes{"kata-vgpu": IsolationVGPU, "kubevirt": IsolationPassthrough}},
		{in: "kata=mps", wantErr: `runtime class "kata": mode "mps" is not a VM-sandbox mode`},
		{in: "kata=none", wantErr: "is not a VM-sandbox mode"},
		{in: "kata=", wantErr: `mode "" is not a VM-sandbox mode`},
		{in: "kata=VGPU", wantErr: "is not a VM-sandbox mode"},
		{in: "kata", wantErr: `runtime class mapping "kata": want name=mode`},
		{in: "=vgpu", wantErr: "want name=mode"},
		{in: "kata=vgpu,", wantErr: `runtime class mapping "": want name=mode`},
		{in: "kata=vgpu,kata=passthrough", wantErr: `runtime class "kata" is mapped twice`},
		{in: "kata=vgpu,kata=vgpu", wantErr: "mapped twice"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRuntimeClassModes(tc.in)
			if checkErr(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("modes (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestRuntimeClassModesValidate(t *testing.T) {
	for _, tc := range []struct {
		m       RuntimeClassModes
		wantErr string
	}{
		{RuntimeClassModes{"kata": IsolationVGPU}, ""},
		{nil, ""},
		{RuntimeClassModes{"": IsolationVGPU}, "empty name"},
		{RuntimeClassModes{"kata": IsolationMPS}, "not a VM-sandbox mode"},
	} {
		err := tc.m.Validate()
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v.Validate() = %v, want %q", tc.m, err, tc.wantErr)
		}
	}
}

func TestModeFor(t *testing.T) {
	m := RuntimeClassModes{"kata-vgpu": IsolationVGPU}
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		m    RuntimeClassModes
		rc   *string
		want IsolationMode
	}{
		{m, nil, ""},
		{m, str("kata-vgpu"), IsolationVGPU},
		{m, str("runc"), ""},
		{nil, str("kata-vgpu"), ""},
	} {
		if got := tc.m.ModeFor(tc.rc); got != tc.want {
			t.Errorf("ModeFor(%v) = %q, want %q", tc.rc, got, tc.want)
		}
	}
}

// TestIsolationAllowed is the whole matrix: a pod that runs containers
// uses shared modes only, a VM pod its own mode only.
func TestIsolationAllowed(t *testing.T) {
	pods := []IsolationMode{"", IsolationVGPU, IsolationPassthrough}
	gpus := []IsolationMode{"", IsolationNone, IsolationMPS, IsolationVGPU, IsolationPassthrough}
	want := map[IsolationMode][]IsolationMode{
		"":                   {"", IsolationNone, IsolationMPS},
		IsolationVGPU:        {IsolationVGPU},
		IsolationPassthrough: {IsolationPassthrough},
	}
	got := map[IsolationMode][]IsolationMode{}
	for _, p := range pods {
		got[p] = []IsolationMode{}
		for _, g := range gpus {
			if IsolationAllowed(p, g) {
				got[p] = append(got[p], g)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("allowed GPU modes per pod mode (-want +got):\n%s", diff)
	}
}

func FuzzParseRuntimeClassModes(f *testing.F) {
	for _, s := range []string{"", "kata-vgpu=vgpu,kubevirt=passthrough", "a=vgpu,a=vgpu", "a=mps", "=", ",", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseRuntimeClassModes(s)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with a mapping %v", err, m)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid mapping %v: %v", m, err)
		}
		if strings.TrimSpace(s) != "" && len(m) != len(strings.Split(s, ",")) {
			t.Fatalf("%q gave %d entries", s, len(m))
		}
		for name, mode := range m {
			if !mode.Sandbox() || name == "" {
				t.Fatalf("entry %q=%q", name, mode)
			}
			if got := m.ModeFor(&name); got != mode {
				t.Fatalf("ModeFor(%q) = %q, want %q", name, got, mode)
			}
		}
	})
}
