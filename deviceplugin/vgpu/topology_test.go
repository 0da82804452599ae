package vgpu

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

func TestSysfsLink(t *testing.T) {
	sw := []string{"pci0000:00", "0000:00:01.0", "0000:01:00.0", "0000:02:00.0"}
	for _, tc := range []struct {
		name         string
		a, b         []string
		numaA, numaB int
		want         api.LinkType
	}{
		{"behind one switch", sw, []string{"pci0000:00", "0000:00:01.0", "0000:01:00.0", "0000:03:00.0"}, 0, 0, api.LinkPCIeSwitch},
		{"one host bridge, other root ports", []string{"pci0000:00", "0000:00:01.0", "0000:41:00.0"}, []string{"pci0000:00", "0000:00:02.0", "0000:42:00.0"}, 0, 0, api.LinkHostBridge},
		{"directly under one host bridge", []string{"pci0000:00", "0000:41:00.0"}, []string{"pci0000:00", "0000:42:00.0"}, -1, -1, api.LinkHostBridge},
		{"other host bridges, one NUMA node", []string{"pci0000:00", "0000:41:00.0"}, []string{"pci0000:40", "0000:c1:00.0"}, 1, 1, api.LinkSameNUMA},
		{"other sockets", []string{"pci0000:00", "0000:41:00.0"}, []string{"pci0000:80", "0000:c1:00.0"}, 0, 1, api.LinkCrossSocket},
		{"unknown", nil, []string{"pci0000:80", "0000:c1:00.0"}, -1, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sysfsLink(tc.a, tc.b, tc.numaA, tc.numaB); got != tc.want {
				t.Errorf("sysfsLink = %q, want %q", got, tc.want)
			}
			if got := sysfsLink(tc.b, tc.a, tc.numaB, tc.numaA); got != tc.want {
				t.Errorf("sysfsLink reversed = %q, want %q", got, tc.want)
			}
		})
	}
}

// nvmlLister is an NVML that sees the GPUs given.
type nvmlLister []device.GPU

func (l nvmlLister) Discover(context.Context) ([]device.GPU, error) { return l, nil }

// TestDiscovererLinks: NVML's links (NVLink lanes) between the GPUs it
// sees, translated from NVML's indexes to the sysfs order; sysfs's host
// bridge for the pairs NVML does not see both of.
func TestDiscovererLinks(t *testing.T) {
	f := newNode(t)
	// NVML sees the T4 and the L40 (not the vfio-pci GPU), in its own
	// order: the L40 first.
	nv := nvmlLister{
		{Index: 0, UUID: "GPU-l40", PCIBusID: sriovGPU, MemoryMiB: 46068, Links: []api.Link{{Peer: 1, Type: api.LinkNVLink, NVLinks: 4}}},
		{Index: 1, UUID: "GPU-t4", PCIBusID: mdevGPU, MemoryMiB: 15360, Links: []api.Link{{Peer: 0, Type: api.LinkNVLink, NVLinks: 4}}},
	}
	gpus, err := (&Discoverer{FS: f, NVML: nv}).Discover(context.Background())
	must(t, err)
	got := map[string][]api.Link{}
	for _, g := range gpus {
		got[g.PCIBusID] = g.Links
	}
	// sysfs order: 41 (T4) = 0, 81 (L40) = 1, c1 (passthrough) = 2, e1 (spare) = 3.
	hb := func(peer int) api.Link { return api.Link{Peer: peer, Type: api.LinkHostBridge} }
	want := map[string][]api.Link{
		mdevGPU:  {{Peer: 1, Type: api.LinkNVLink, NVLinks: 4}, hb(2), hb(3)},
		sriovGPU: {{Peer: 0, Type: api.LinkNVLink, NVLinks: 4}, hb(2), hb(3)},
		ptGPU:    {hb(0), hb(1), hb(3)},
		spareGPU: {hb(0), hb(1), hb(2)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
}
