package vgpu

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

func TestEnvVarNameFollowsKubeVirt(t *testing.T) {
	for _, tc := range []struct{ prefix, name, want string }{
		{EnvPrefixMdev, "nvidia.com/GRID_T4-4Q", "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-4Q"},
		{EnvPrefixPCI, "nvidia.com/GA102GL_A10", "PCI_RESOURCE_NVIDIA_COM_GA102GL_A10"},
		{EnvPrefixPCI, "gpuslice.io/vgpu.l40", "PCI_RESOURCE_GPUSLICE_IO_VGPU_L40"},
	} {
		if got := EnvVarName(tc.prefix, tc.name); got != tc.want {
			t.Errorf("EnvVarName(%s, %s) = %s, want %s", tc.prefix, tc.name, got, tc.want)
		}
	}
}

func TestAllocateEdits(t *testing.T) {
	mdev := func(n int, group string) Device {
		return Device{Kind: KindMdev, ID: uuidN(n), Parent: mdevGPU, IOMMUGroup: group}
	}
	vfio := func(groups ...string) []device.DeviceNode {
		out := []device.DeviceNode{{ContainerPath: "/dev/vfio/vfio", HostPath: "/dev/vfio/vfio", Permissions: "mrw"}}
		for _, g := range groups {
			out = append(out, device.DeviceNode{ContainerPath: "/dev/vfio/" + g, HostPath: "/dev/vfio/" + g, Permissions: "mrw"})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		devs []Device
		want *device.ContainerEdits
	}{
		{"two mdevs", []Device{mdev(2, "108"), mdev(1, "107")}, &device.ContainerEdits{Exclusive: true,
			Envs:    map[string]string{"MDEV_PCI_RESOURCE_GPUSLICE_IO_VGPU": uuidN(2) + "," + uuidN(1)},
			Devices: vfio("108", "107"),
		}},
		{"VF", []Device{{Kind: KindVF, ID: sriovVFs[0], Parent: sriovGPU, IOMMUGroup: "103"}}, &device.ContainerEdits{Exclusive: true,
			Envs:    map[string]string{"PCI_RESOURCE_GPUSLICE_IO_VGPU": sriovVFs[0]},
			Devices: vfio("103"),
		}},
		{"passthrough GPU and audio in one group", []Device{
			{Kind: KindPassthrough, ID: ptGPU, IOMMUGroup: "7"}, {Kind: KindPassthrough, ID: ptAudio, IOMMUGroup: "7"},
		}, &device.ContainerEdits{Exclusive: true,
			Envs:    map[string]string{"PCI_RESOURCE_GPUSLICE_IO_VGPU": ptGPU + "," + ptAudio},
			Devices: vfio("7"),
		}},
	} {
		got, err := AllocateEdits("gpuslice.io/vgpu", tc.devs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
}

func TestAllocateEditsRefusesBadDevices(t *testing.T) {
	for _, tc := range []struct {
		name, resource string
		devs           []Device
		want           string
	}{
		{"no resource", "", []Device{{Kind: KindMdev, ID: uuidN(1), IOMMUGroup: "1"}}, "empty resource name"},
		{"no devices", "r", nil, "no devices"},
		{"bad uuid", "r", []Device{{Kind: KindMdev, ID: "x", IOMMUGroup: "1"}}, "not a UUID"},
		{"bad bdf", "r", []Device{{Kind: KindVF, ID: "x", IOMMUGroup: "1"}}, "not a PCI address"},
		{"no group", "r", []Device{{Kind: KindMdev, ID: uuidN(1)}}, "no IOMMU group"},
		{"bad group", "r", []Device{{Kind: KindMdev, ID: uuidN(1), IOMMUGroup: "../1"}}, `IOMMU group "../1"`},
		{"unknown kind", "r", []Device{{Kind: "mig", ID: uuidN(1), IOMMUGroup: "1"}}, "unknown kind"},
	} {
		_, err := AllocateEdits(tc.resource, tc.devs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
