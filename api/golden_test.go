package api

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden annotation files in testdata")

var goldenTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func goldenPlacement() *Placement {
	return &Placement{Version: PlacementVersion, Node: "node-a", AssignedAt: goldenTime, Containers: []ContainerPlacement{
		{Name: "init", Init: true, Devices: []DeviceShare{{UUID: "GPU-1", Index: 1, Slices: 8, Slots: 1}}},
		{Name: "sidecar", Init: true, Devices: []DeviceShare{{UUID: "GPU-0", Index: 0, Slices: 2, Core: 10, Slots: 1}}},
		{Name: "app", Devices: []DeviceShare{
			{UUID: "GPU-1", Index: 1, Slices: 4, Core: 50, Slots: 1},
			{UUID: "GPU-0", Index: 0, Slices: 4, Core: 50, Slots: 1},
		}},
	}}
}

func goldenAllocation() *Allocation {
	a := goldenPlacement()
	a.AssignedAt = time.Time{}
	a.AllocatedAt = goldenTime.Add(time.Minute)
	return a
}

func goldenInventory() *Inventory {
	return &Inventory{Version: InventoryVersion, SliceMiB: 1024, MaxGPUsPerContainer: 1,
		Capabilities: &Capabilities{DriverVersion: "580.65.06", CUDAVersion: "13.0", CgroupV2: true}, GPUs: []GPU{
			{Index: 0, UUID: "GPU-0", Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slices: 40, Slots: 48, CoreUnits: 100,
				NUMANode: 0, PCIBusID: "00000000:07:00.0", Healthy: true, Isolation: IsolationMPS,
				Enforcement: EnforcementCeiling, MIGMode: MIGDisabled,
				Links: []Link{{Peer: 1, Type: LinkNVLink, NVLinks: 12}}},
			{Index: 1, UUID: "GPU-1", Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slices: 40, Slots: 48, CoreUnits: 100,
				NUMANode: -1, Healthy: false, Reason: "XID 79", Isolation: IsolationMPS,
				Links: []Link{{Peer: 0, Type: LinkNVLink, NVLinks: 12}}},
		}}
}

// TestGoldenAnnotations checks every annotation against its golden file:
// the file decodes to the expected record, and encoding the record gives
// the file byte for byte. Run with -update to rewrite the files after a
// deliberate schema change.
func TestGoldenAnnotations(t *testing.T) {
	tests := []struct {
		file   string
		want   any
		encode func() (string, error)
		parse  func(string) (any, error)
	}{
		{"placement.json", goldenPlacement(), goldenPlacement().Encode, func(s string) (any, error) { return ParsePlacement(s) }},
		{"allocation.json", goldenAllocation(), goldenAllocation().Encode, func(s string) (any, error) { return ParseAllocation(s) }},
		{"inventory.json", goldenInventory(), goldenInventory().Encode, func(s string) (any, error) { return ParseInventory(s) }},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			enc, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(path, []byte(enc+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(string(b), "\n")
			if golden != enc {
				t.Errorf("encoding differs from %s:\n got %s\nwant %s", path, enc, golden)
			}
			got, err := tc.parse(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decoded %s (-want +got):\n%s", path, diff)
			}
		})
	}
}
