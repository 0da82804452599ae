package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInventoryValidate(t *testing.T) {
	testValidate(t, goldenInventory, []inventoryCase{
		{name: "golden", change: func(*Inventory) {}},
		{name: "version", change: func(inv *Inventory) { inv.Version = "v0" }, wantErr: "not supported"},
		{name: "slice size", change: func(inv *Inventory) { inv.SliceMiB = 0 }, wantErr: "sliceMiB must be from 1"},
		{name: "huge slice size", change: func(inv *Inventory) { inv.SliceMiB = MaxMemoryMiBPerGPU + 1 }, wantErr: "sliceMiB must be from 1"},
		{name: "negative span", change: func(inv *Inventory) { inv.MaxGPUsPerContainer = -1 }, wantErr: "maxGPUsPerContainer"},
		{name: "huge span", change: func(inv *Inventory) { inv.MaxGPUsPerContainer = MaxGPUsPerNode + 1 }, wantErr: "maxGPUsPerContainer"},
		{name: "empty uuid", change: func(inv *Inventory) { inv.GPUs[0].UUID = "" }, wantErr: "empty uuid"},
		{name: "duplicate uuid", change: func(inv *Inventory) { inv.GPUs[1].UUID = "GPU-0" }, wantErr: "duplicate uuid"},
		{name: "duplicate index", change: func(inv *Inventory) { inv.GPUs[1].Index = 0 }, wantErr: "bad or duplicate index"},
		{name: "negative index", change: func(inv *Inventory) { inv.GPUs[1].Index = -1 }, wantErr: "bad or duplicate index"},
		{name: "negative capacity", change: func(inv *Inventory) { inv.GPUs[0].Slots = -1 }, wantErr: "negative capacity"},
		{name: "1000 core units", change: func(inv *Inventory) { inv.GPUs[0].CoreUnits = 1000 }, wantErr: "1000 core units, more than 100 per GPU"},
		{name: "101 core units", change: func(inv *Inventory) { inv.GPUs[0].CoreUnits = 101 }, wantErr: "more than 100 per GPU"},
		{name: "fewer core units", change: func(inv *Inventory) { inv.GPUs[0].CoreUnits = 50 }},
		{name: "slices", change: func(inv *Inventory) { inv.GPUs[0].Slices = MaxSlicesPerGPU + 1 }, wantErr: "slices, more than"},
		{name: "slots", change: func(inv *Inventory) { inv.GPUs[0].Slots = MaxSlotsPerGPU + 1 }, wantErr: "slots, more than"},
		{name: "memory", change: func(inv *Inventory) { inv.GPUs[0].MemoryMiB = MaxMemoryMiBPerGPU + 1 }, wantErr: "MiB, more than"},
		{name: "numa", change: func(inv *Inventory) { inv.GPUs[0].NUMANode = -2 }, wantErr: "bad NUMA node"},
		{name: "isolation", change: func(inv *Inventory) { inv.GPUs[0].Isolation = "mig" }, wantErr: "unknown isolation mode"},
		{name: "enforcement", change: func(inv *Inventory) { inv.GPUs[0].Enforcement = "strong" }, wantErr: "unknown enforcement"},
		{name: "mig mode", change: func(inv *Inventory) { inv.GPUs[0].MIGMode = "on" }, wantErr: "unknown MIG mode"},
		{name: "memory partitioning", change: func(inv *Inventory) { inv.Capabilities.MemoryPartitioning = "uvm" }, wantErr: "unknown memory partitioning"},
		{name: "long driver version", change: func(inv *Inventory) { inv.Capabilities.DriverVersion = strings.Repeat("9", 65) }, wantErr: "version longer than"},
		{name: "no capabilities", change: func(inv *Inventory) { inv.Capabilities = nil }},
		{name: "problems", change: func(inv *Inventory) { inv.Problems = []string{"GPU 0000:41:00.0: not served: no instances"} }},
		{name: "too many problems", change: func(inv *Inventory) { inv.Problems = make([]string, MaxInventoryProblems+1) }, wantErr: "problems, more than"},
		{name: "long problem", change: func(inv *Inventory) { inv.Problems = []string{strings.Repeat("x", MaxProblemLen+1)} }, wantErr: "bytes, more than"},
		{name: "link to self", change: func(inv *Inventory) { inv.GPUs[0].Links[0].Peer = 0 }, wantErr: "link to unknown peer"},
		{name: "link to nowhere", change: func(inv *Inventory) { inv.GPUs[0].Links[0].Peer = 7 }, wantErr: "link to unknown peer"},
		{name: "too many GPUs", change: func(inv *Inventory) {
			inv.GPUs = nil
			for i := 0; i <= MaxGPUsPerNode; i++ {
				inv.GPUs = append(inv.GPUs, GPU{Index: i, UUID: "GPU-" + strings.Repeat("x", i+1)})
			}
		}, wantErr: "more than 128"},
	})
	for in, want := range map[string]string{"": "empty inventory", "[": "decode inventory"} {
		if _, err := ParseInventory(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseInventory(%q) = %v, want %q", in, err, want)
		}
	}
}

func FuzzParseInventory(f *testing.F) {
	b, err := goldenInventory().Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{b, "", "{}", `{"version":"gpuslice.io/v1","sliceMiB":1,"gpus":[{"uuid":"a","coreUnits":1000}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInventory(s)
		if err != nil {
			return
		}
		for _, g := range inv.GPUs {
			if g.CoreUnits > CoreUnitsPerGPU || g.Slices > MaxSlicesPerGPU || g.Slots > MaxSlotsPerGPU {
				t.Fatalf("accepted out-of-bounds GPU %+v", g)
			}
		}
		if diff := cmp.Diff(inv, roundTrip(t, inv, ParseInventory)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func TestEnforces(t *testing.T) {
	tests := []struct {
		gpu  GPU
		want Enforcement
	}{
		{GPU{Isolation: IsolationMPS}, EnforcementCeiling},
		{GPU{Isolation: IsolationMPS, Enforcement: EnforcementBinding}, EnforcementBinding},
		{GPU{Isolation: IsolationNone}, EnforcementNone},
		{GPU{Isolation: IsolationVGPU}, EnforcementBinding},
		{GPU{Isolation: IsolationPassthrough}, EnforcementBinding},
		{GPU{Isolation: "mig"}, EnforcementNone},
		{GPU{}, EnforcementNone},
	}
	for _, tt := range tests {
		if got := tt.gpu.Enforces(); got != tt.want {
			t.Errorf("%+v.Enforces() = %q, want %q", tt.gpu, got, tt.want)
		}
	}
}

func TestEnforcementAllowed(t *testing.T) {
	tests := []struct {
		min  Enforcement
		gpu  Enforcement
		want bool
	}{
		{"", EnforcementNone, true},
		{EnforcementNone, EnforcementNone, true},
		{EnforcementCeiling, EnforcementNone, false},
		{EnforcementCeiling, EnforcementCeiling, true},
		{EnforcementCeiling, EnforcementBinding, true},
		{EnforcementBinding, EnforcementCeiling, false},
		{EnforcementBinding, EnforcementBinding, true},
		{EnforcementNone, "bogus", false},
	}
	for _, tt := range tests {
		r := &PodRequest{MinEnforcement: tt.min}
		if got := r.EnforcementAllowed(tt.gpu); got != tt.want {
			t.Errorf("min %q, GPU %q: allowed %v, want %v", tt.min, tt.gpu, got, tt.want)
		}
	}
}
