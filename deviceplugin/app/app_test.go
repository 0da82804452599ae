package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/spf13/pflag"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"defaults", []string{"--node-name=n"}, ""},
		{"mps", []string{"--node-name=n", "--isolation=mps"}, ""},
		{"no node", []string{"--node-name="}, "node name"},
		{"bad isolation", []string{"--node-name=n", "--isolation=mig"}, "--isolation"},
		{"vgpu without a vgpu section", []string{"--node-name=n", "--isolation=vgpu"}, "--isolation=vgpu needs the vgpu section"},
		{"small slices", []string{"--node-name=n", "--slice-mib=64"}, "below the minimum"},
		{"bad strategy", []string{"--node-name=n", "--device-list-strategy=x"}, "strategy"},
		{"zero slots", []string{"--node-name=n", "--slots-per-gpu=0"}, "slots"},
		{"mps node scope", []string{"--node-name=n", "--isolation=mps", "--mps-scope=node"}, ""},
		{"bad mps scope", []string{"--node-name=n", "--isolation=mps", "--mps-scope=rack"}, "--mps-scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	s := dgxa100.New()
	for i, d := range s.Devices {
		dev := d.(*dgxa100.Device)
		i := i
		dev.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
			var p gonvml.PciInfo
			for j, c := range fmt.Sprintf("00000000:%02X:00.0", 0x10+i) {
				p.BusId[j] = int8(c)
			}
			return p, gonvml.SUCCESS
		}
		dev.GetNumaNodeIdFunc = func() (int, gonvml.Return) { return i / 4, gonvml.SUCCESS }
		dev.GetNvLinkStateFunc = func(int) (gonvml.EnableState, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
		dev.GetTopologyCommonAncestorFunc = func(gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
			return gonvml.TOPOLOGY_SYSTEM, gonvml.SUCCESS
		}
		dev.RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
	}
	s.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{FreeFunc: func() gonvml.Return { return gonvml.SUCCESS }}, gonvml.SUCCESS
	}
	o := NewOptions()
	var out bytes.Buffer
	if err := check(context.Background(), s, o, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	i := strings.Index(text, "\nTOPOLOGY")
	if i < 0 {
		t.Fatalf("no topology in\n%s", text)
	}
	var rep CheckReport
	if err := json.Unmarshal([]byte(text[:i]), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, text)
	}
	if len(rep.Inventory.GPUs) != 8 || rep.XidEvents != "registered on every GPU" || len(rep.Health) != 8 {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(text[i:], "cross-socket") {
		t.Errorf("topology:\n%s", text[i:])
	}
}

func TestIsolatorMPSVersion(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		caps    *api.Capabilities
		want    int
		wantErr string
	}{
		{name: "legacy by default", args: []string{"--isolation=mps"}, want: mps.VersionLegacy},
		{name: "v3 on a v3 node", args: []string{"--isolation=mps", "--mps-version=3"}, caps: &api.Capabilities{MPSv3: true}, want: mps.VersionV3},
		{name: "v3 on an older node", args: []string{"--isolation=mps", "--mps-version=3"}, caps: &api.Capabilities{DriverVersion: "580.65.06", CUDAVersion: "13.0"},
			wantErr: "the node does not support MPS v3 (driver 580.65.06, CUDA 13.0; MPS v3 needs driver >= 615 and CUDA >= 13.4)"},
		{name: "v3 without detection", args: []string{"--isolation=mps", "--mps-version=3"}, wantErr: "capabilities could not be detected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(t, tc.args...)
			o.Plugin.Capabilities = tc.caps
			iso, err := o.isolator(nil, clock.RealClock{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("isolator error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := iso.(*mps.Manager).Version(); got != tc.want {
				t.Errorf("version %d, want %d", got, tc.want)
			}
		})
	}
}

func TestIsolatorMaxGPUsPerContainer(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"none", nil, 0},
		{"mps, daemon per GPU (default)", []string{"--isolation=mps"}, 1},
		{"mps, daemon per GPU", []string{"--isolation=mps", "--mps-scope=gpu"}, 1},
		{"mps, daemon per node", []string{"--isolation=mps", "--mps-scope=node"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(t, tc.args...)
			iso, err := o.isolator(nil, clock.RealClock{})
			if err != nil {
				t.Fatal(err)
			}
			if got := device.MaxGPUsPerContainer(iso); got != tc.want {
				t.Errorf("MaxGPUsPerContainer %d, want %d", got, tc.want)
			}
		})
	}
}

// validOptions parses args (after --node-name=n) into Options and validates
// them, failing the test on an error.
func validOptions(t *testing.T, args ...string) *Options {
	t.Helper()
	o := NewOptions()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(append([]string{"--node-name=n"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return o
}
