package nvml

import (
	"context"
	"fmt"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

func pciInfo(bus string) gonvml.PciInfo {
	var p gonvml.PciInfo
	for i := 0; i < len(bus) && i < len(p.BusId)-1; i++ {
		p.BusId[i] = int8(bus[i])
	}
	return p
}

func nvmlBus(i int) string { return fmt.Sprintf("00000000:%02X:00.0", 0x10+i) }

// wireNVLinks gives mock GPU i its bus id and links active NVLinks, each
// to a remote of the given type.
func wireNVLinks(dev *server.Device, i, links int, remote gonvml.IntNvLinkDeviceType) {
	dev.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) { return pciInfo(nvmlBus(i)), gonvml.SUCCESS }
	dev.GetNvLinkStateFunc = func(l int) (gonvml.EnableState, gonvml.Return) {
		if l >= links {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return gonvml.FEATURE_ENABLED, gonvml.SUCCESS
	}
	dev.GetNvLinkRemoteDeviceTypeFunc = func(int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
		return remote, gonvml.SUCCESS
	}
}

// wireA100 fills in what the dgxa100 mock leaves empty: bus ids, NUMA
// nodes, direct NVLinks between GPU pairs (i, i^1) and PCIe levels.
func wireA100(t *testing.T, s *dgxa100.Server, numaFromNVML bool) {
	t.Helper()
	for i, d := range s.Devices {
		dev := d.(*dgxa100.Device)
		i := i
		wireNVLinks(dev, i, 2, gonvml.NVLINK_DEVICE_TYPE_GPU)
		dev.GetNumaNodeIdFunc = func() (int, gonvml.Return) {
			if !numaFromNVML {
				return 0, gonvml.ERROR_NOT_SUPPORTED
			}
			return i / 4, gonvml.SUCCESS
		}
		dev.GetNvLinkRemotePciInfoFunc = func(int) (gonvml.PciInfo, gonvml.Return) { return pciInfo(nvmlBus(i ^ 1)), gonvml.SUCCESS }
		dev.GetTopologyCommonAncestorFunc = func(peer gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
			j := peer.(*dgxa100.Device).Index
			if i/4 == j/4 {
				return gonvml.TOPOLOGY_NODE, gonvml.SUCCESS
			}
			return gonvml.TOPOLOGY_SYSTEM, gonvml.SUCCESS
		}
	}
}

type fakeSysfs map[string]int

func (f fakeSysfs) NUMANode(bus string) (int, error) {
	n, ok := f[bus]
	if !ok {
		return -1, fmt.Errorf("no device %s", bus)
	}
	return n, nil
}

func TestDiscoverA100(t *testing.T) {
	for _, numaFromNVML := range []bool{true, false} {
		t.Run(fmt.Sprintf("numaFromNVML=%v", numaFromNVML), func(t *testing.T) {
			s := dgxa100.New()
			wireA100(t, s, numaFromNVML)
			s.Devices[3].(*dgxa100.Device).MigMode = gonvml.DEVICE_MIG_ENABLE
			sys := fakeSysfs{}
			for i := 0; i < 8; i++ {
				sys[NormalizeBusID(nvmlBus(i))] = i / 4
			}
			d := &Discovery{Lib: s, Sysfs: sys}
			gpus, err := d.Discover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(gpus) != 8 {
				t.Fatalf("got %d GPUs", len(gpus))
			}
			for i, g := range gpus {
				want := device.GPU{
					Index: i, UUID: s.Devices[i].(*dgxa100.Device).UUID, Model: "Mock NVIDIA A100-SXM4-40GB",
					MemoryMiB: 40960, PCIBusID: fmt.Sprintf("0000:%02x:00.0", 0x10+i), NUMANode: i / 4,
					Minor: i, Major: 8, MinorCC: 0, MIGEnabled: i == 3, MIGCapable: true,
				}
				for j := 0; j < 8; j++ {
					switch {
					case j == i:
						continue
					case j == i^1:
						want.Links = append(want.Links, api.Link{Peer: j, Type: api.LinkNVLink, NVLinks: 2})
					case j/4 == i/4:
						want.Links = append(want.Links, api.Link{Peer: j, Type: api.LinkSameNUMA})
					default:
						want.Links = append(want.Links, api.Link{Peer: j, Type: api.LinkCrossSocket})
					}
				}
				got := g
				got.Model = want.Model // the mock's name varies by version; checked below
				got.MemoryMiB = want.MemoryMiB
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("gpu %d (-want +got):\n%s", i, diff)
				}
				if g.Model == "" || g.MemoryMiB < 40000 {
					t.Errorf("gpu %d: model %q memory %d", i, g.Model, g.MemoryMiB)
				}
			}
		})
	}
}

func TestDiscoverH100NVSwitch(t *testing.T) {
	s := dgxh100.New()
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		i := i
		wireNVLinks(dev, i, 18, gonvml.NVLINK_DEVICE_TYPE_SWITCH)
		dev.GetNumaNodeIdFunc = func() (int, gonvml.Return) { return i / 4, gonvml.SUCCESS }
	}
	d := &Discovery{Lib: s}
	gpus, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gpus {
		if len(g.Links) != 7 {
			t.Fatalf("gpu %d: %d links", g.Index, len(g.Links))
		}
		for _, l := range g.Links {
			if l.Type != api.LinkNVLink || l.NVLinks != 18 {
				t.Errorf("gpu %d link %+v, want 18 NVLinks", g.Index, l)
			}
		}
	}
}

func TestProbeLost(t *testing.T) {
	s := dgxa100.New()
	wireA100(t, s, true)
	d := &Discovery{Lib: s}
	uuid := s.Devices[0].(*dgxa100.Device).UUID
	if err := d.Probe(uuid); err != nil {
		t.Fatalf("probe: %v", err)
	}
	s.Devices[0].(*dgxa100.Device).GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
	}
	if err := d.Probe(uuid); !IsLost(err) {
		t.Fatalf("probe of a lost GPU: %v, want lost", err)
	}
	if err := d.Probe("GPU-nope"); !IsLost(err) {
		t.Fatalf("probe of an unknown GPU: %v, want lost", err)
	}
}

func TestNormalizeBusID(t *testing.T) {
	for in, want := range map[string]string{
		"00000000:07:00.0": "0000:07:00.0",
		"0000:AB:00.0":     "0000:ab:00.0",
		"00000001:07:00.0": "0001:07:00.0",
	} {
		if got := NormalizeBusID(in); got != want {
			t.Errorf("NormalizeBusID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestComputeModes(t *testing.T) {
	s := dgxa100.New()
	dev := s.Devices[1].(*dgxa100.Device)
	var got []gonvml.ComputeMode
	dev.SetComputeModeFunc = func(m gonvml.ComputeMode) gonvml.Return {
		got = append(got, m)
		return gonvml.SUCCESS
	}
	c := ComputeModes{Lib: s}
	if err := c.SetExclusiveProcess(dev.UUID); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDefault(dev.UUID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]gonvml.ComputeMode{gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, gonvml.COMPUTEMODE_DEFAULT}, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
	if err := c.SetDefault("GPU-missing"); err == nil {
		t.Fatal("compute mode of a missing GPU")
	}
}
