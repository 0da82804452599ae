package vgpu

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDiscoverAllFlavours(t *testing.T) {
	f := newNode(t)
	createMdevs(t, f, "nvidia-222", 1, 2)
	must(t, SetVFType(f, sriovVFs[1], 557))
	n := discover(t, f)

	// With one VF on L40-4Q and no mixed types, every VF offers only it.
	onlyL404Q := []VGPUType{{ID: 557, Name: "NVIDIA L40-4Q", FramebufferMiB: 4096}}
	want := &Node{GPUs: []GPU{
		{
			Index: 0, BDF: mdevGPU, DeviceID: "0x1eb8", Driver: "nvidia", IOMMUGroup: "101", Flavour: FlavourMdev,
			MdevTypes: []MdevType{
				{ID: "nvidia-222", Name: "GRID T4-4Q", Description: t4Desc4Q, DeviceAPI: "vfio-pci", Available: 2, MaxInstances: 4, FramebufferMiB: 4096},
				{ID: "nvidia-223", Name: "GRID T4-8Q", Description: t4Desc8Q, DeviceAPI: "vfio-pci", Available: 0, MaxInstances: 2, FramebufferMiB: 8192},
			},
			Mdevs: []Mdev{
				{UUID: uuidN(1), Parent: mdevGPU, Type: "nvidia-222", IOMMUGroup: "107"},
				{UUID: uuidN(2), Parent: mdevGPU, Type: "nvidia-222", IOMMUGroup: "108"},
			},
		},
		{
			Index: 1, BDF: sriovGPU, DeviceID: "0x26b5", Driver: "nvidia", IOMMUGroup: "102", NUMANode: 1, Flavour: FlavourSRIOV,
			VFs: []VF{
				{BDF: sriovVFs[0], Index: 0, IOMMUGroup: "103", Driver: "nvidia", VGPU: true, Creatable: onlyL404Q},
				{BDF: sriovVFs[1], Index: 1, IOMMUGroup: "104", Driver: "nvidia", VGPU: true, CurrentType: 557, Creatable: onlyL404Q},
				{BDF: sriovVFs[2], Index: 2, IOMMUGroup: "105", Driver: "nvidia", VGPU: true, Creatable: onlyL404Q},
				{BDF: sriovVFs[3], Index: 3, IOMMUGroup: "106", Driver: "nvidia", VGPU: true, Creatable: onlyL404Q},
			},
			SRIOVTypes: onlyL404Q,
		},
		{Index: 2, BDF: ptGPU, DeviceID: "0x2236", Driver: VFIODriver, IOMMUGroup: "7", NUMANode: 1, Flavour: FlavourNone},
		{Index: 3, BDF: spareGPU, DeviceID: "0x2236", Driver: "nvidia", IOMMUGroup: "9", Flavour: FlavourNone},
	}}
	if d := cmp.Diff(want, n, cmpopts.EquateErrors()); d != "" {
		t.Errorf("Discover (-want +got):\n%s", d)
	}

	wantDevs := []Device{
		{Kind: KindMdev, ID: uuidN(1), Parent: mdevGPU, IOMMUGroup: "107", TypeName: "GRID T4-4Q", FramebufferMiB: 4096},
		{Kind: KindMdev, ID: uuidN(2), Parent: mdevGPU, IOMMUGroup: "108", TypeName: "GRID T4-4Q", FramebufferMiB: 4096},
		{Kind: KindVF, ID: sriovVFs[1], Parent: sriovGPU, IOMMUGroup: "104", TypeName: "NVIDIA L40-4Q", FramebufferMiB: 4096},
		{Kind: KindPassthrough, ID: ptGPU, Parent: ptGPU, IOMMUGroup: "7"},
	}
	if d := cmp.Diff(wantDevs, n.Devices()); d != "" {
		t.Errorf("Devices (-want +got):\n%s", d)
	}
}

func TestDiscoverMalformed(t *testing.T) {
	typ := "bus/pci/devices/" + mdevGPU + "/mdev_supported_types/nvidia-223/"
	vf := "bus/pci/devices/" + sriovVFs[2] + "/nvidia/"
	for _, tc := range []struct {
		name string
		// break_ damages the tree; gpu is the GPU whose Err must name want
		// ("" for Node.Errs).
		break_ func(t *testing.T, f fakeTree)
		gpu    string
		want   string
	}{
		{"available_instances not a number", func(t *testing.T, f fakeTree) { must(t, f.SetFile(typ+"available_instances", "four")) },
			mdevGPU, typ + "available_instances: \"four\""},
		{"negative available_instances", func(t *testing.T, f fakeTree) { must(t, f.SetFile(typ+"available_instances", "-1")) },
			mdevGPU, "available_instances"},
		{"framebuffer without unit", func(t *testing.T, f fakeTree) {
			must(t, f.SetFile(typ+"description", "num_heads=4, framebuffer=8192"))
		}, mdevGPU, "framebuffer \"8192\""},
		{"description not key=value", func(t *testing.T, f fakeTree) { must(t, f.SetFile(typ+"description", "eight gigabytes")) },
			mdevGPU, "not key=value"},
		{"type name unreadable", func(t *testing.T, f fakeTree) { must(t, f.RemoveFile(typ+"name")) },
			mdevGPU, typ + "name"},
		{"mdev without IOMMU group", func(t *testing.T, f fakeTree) {
			must(t, CreateMdev(f, mdevGPU, "nvidia-222", uuidN(1)))
			must(t, f.RemoveFile("devices/pci0000:00/"+mdevGPU+"/"+uuidN(1)+"/iommu_group"))
		}, mdevGPU, "iommu_group: missing"},
		{"IOMMU group not a number", func(t *testing.T, f fakeTree) {
			must(t, f.SetLink("devices/pci0000:00/"+spareGPU+"/iommu_group", "../../../kernel/iommu_groups/abc"))
		}, spareGPU, "group \"abc\" is not a number"},
		{"creatable_vgpu_types garbage", func(t *testing.T, f fakeTree) {
			must(t, f.SetFile(vf+"creatable_vgpu_types", "ID : vGPU Name\nL40-4Q\n"))
		}, sriovGPU, "line 2 \"L40-4Q\""},
		{"current_vgpu_type not a number", func(t *testing.T, f fakeTree) { must(t, f.SetFile(vf+"current_vgpu_type", "L40-4Q")) },
			sriovGPU, "current_vgpu_type"},
		{"device id garbage", func(t *testing.T, f fakeTree) { must(t, f.SetFile("bus/pci/devices/"+spareGPU+"/device", "2236")) },
			spareGPU, "not a hex number"},
		{"vendor garbage", func(t *testing.T, f fakeTree) { must(t, f.SetFile("bus/pci/devices/"+spareGPU+"/vendor", "nvidia")) },
			"", spareGPU + "/vendor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNode(t)
			tc.break_(t, f)
			n := discover(t, f)
			var err error
			if tc.gpu == "" {
				if len(n.Errs) == 0 {
					t.Fatal("no node error")
				}
				err = n.Errs[0]
			} else {
				err = gpu(t, n, tc.gpu).Err
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			for _, g := range n.GPUs {
				if g.BDF != tc.gpu && g.Err != nil {
					t.Errorf("GPU %s has error %v; only %s is damaged", g.BDF, g.Err, tc.gpu)
				}
			}
		})
	}
}

// fakeTree is the part of sysfs.Fake the damage functions use.
type fakeTree interface {
	SetFile(p, content string) error
	SetLink(p, target string) error
	RemoveFile(p string) error
	ReadFile(p string) ([]byte, error)
	WriteFile(p string, data []byte) error
	ReadDir(p string) ([]string, error)
	Readlink(p string) (string, error)
	Exists(p string) (bool, error)
}
