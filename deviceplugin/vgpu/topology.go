package vgpu

import (
	"strings"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// pciAncestry returns the PCI path of the device at bdf below /sys/devices:
// its host bridge ("pci0000:00"), the bridges above it, and itself, read
// from the bus/pci/devices link. nil when the link cannot be read.
func pciAncestry(f sysfs.FS, bdf string) []string {
	t, err := f.Readlink(devPath(bdf))
	if err != nil {
		return nil
	}
	_, rest, ok := strings.Cut(strings.TrimRight(t, "/"), "devices/")
	if !ok {
		return nil
	}
	elems := strings.Split(rest, "/")
	if len(elems) < 2 || !strings.HasPrefix(elems[0], "pci") {
		return nil
	}
	return elems
}

// sysfsLink is the interconnect of two GPUs as sysfs shows it: behind a
// shared PCIe bridge (a switch), under one host bridge, on one NUMA node,
// or across sockets; "" when sysfs does not tell.
func sysfsLink(a, b []string, numaA, numaB int) api.LinkType {
	if len(a) > 0 && len(b) > 0 && a[0] == b[0] {
		// Bridges shared below the host bridge (the devices themselves
		// excluded).
		shared := 0
		for i := 1; i < len(a)-1 && i < len(b)-1 && a[i] == b[i]; i++ {
			shared++
		}
		if shared > 0 {
			return api.LinkPCIeSwitch
		}
		return api.LinkHostBridge
	}
	switch {
	case numaA >= 0 && numaA == numaB:
		return api.LinkSameNUMA
	case numaA >= 0 && numaB >= 0:
		return api.LinkCrossSocket
	}
	return ""
}

// links fills every GPU's Links: NVML's (NVLink lanes, PCIe levels) for
// pairs NVML sees both of, translated to the sysfs indexes, else what sysfs
// tells; the better of the two when both do. nv maps a GPU's PCI address
// to what NVML reported for it.
func links(f sysfs.FS, out []device.GPU, nv map[string]device.GPU) {
	byNVMLIndex := map[int]int{} // NVML index -> position in out
	for i, g := range out {
		if n, ok := nv[g.PCIBusID]; ok {
			byNVMLIndex[n.Index] = i
		}
	}
	anc := make([][]string, len(out))
	for i, g := range out {
		anc[i] = pciAncestry(f, g.PCIBusID)
	}
	for i := range out {
		best := map[int]api.Link{} // peer position -> link
		if n, ok := nv[out[i].PCIBusID]; ok {
			for _, l := range n.Links {
				if j, ok := byNVMLIndex[l.Peer]; ok && j != i {
					best[j] = api.Link{Peer: out[j].Index, Type: l.Type, NVLinks: l.NVLinks}
				}
			}
		}
		for j := range out {
			if j == i {
				continue
			}
			t := sysfsLink(anc[i], anc[j], out[i].NUMANode, out[j].NUMANode)
			if t == "" {
				continue
			}
			if l, ok := best[j]; !ok || t.Rank() > l.Type.Rank() {
				best[j] = api.Link{Peer: out[j].Index, Type: t}
			}
		}
		out[i].Links = nil
		for j := range out {
			if l, ok := best[j]; ok {
				out[i].Links = append(out[i].Links, l)
			}
		}
	}
}
