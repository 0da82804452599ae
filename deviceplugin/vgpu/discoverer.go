package vgpu

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// PCIIDPrefix starts the identity of a GPU that NVML does not see (one on
// vfio-pci): "PCI-0000:07:00.0". It never contains "::", the separator of
// the plugin's device IDs.
const PCIIDPrefix = "PCI-"

// PCIID returns the identity of the GPU at bdf for a GPU NVML does not see.
func PCIID(bdf string) string { return PCIIDPrefix + bdf }

// IsPCIID reports whether uuid is a PCIID rather than an NVML UUID.
func IsPCIID(uuid string) bool { return strings.HasPrefix(uuid, PCIIDPrefix) }

// GPULister lists the GPUs NVML sees (nvml.Discovery).
type GPULister interface {
	Discover(ctx context.Context) ([]device.GPU, error)
}

// Discoverer finds a vGPU node's GPUs in sysfs, since NVML does not see a
// GPU on vfio-pci. Each NVIDIA GPU (physical function) is one device.GPU:
// Index is its position in PCI address order, NUMANode from sysfs, and the
// UUID, model, memory and compute capability are NVML's where NVML sees a
// GPU at that address; otherwise the UUID is PCIID(bdf) and the model names
// the PCI device id. Links come from NVML (NVLink lanes, PCIe levels)
// where NVML sees both GPUs, else from sysfs: a shared PCIe bridge, the same
// host bridge, the same or another NUMA node (topology.go). It implements
// the device plugin's Discoverer.
type Discoverer struct {
	FS sysfs.FS
	// NVML, when set, names the GPUs it sees; nil, or an NVML that fails,
	// leaves every GPU with its sysfs identity.
	NVML GPULister
}

// Discover implements the device plugin's Discoverer.
func (d *Discoverer) Discover(ctx context.Context) ([]device.GPU, error) {
	logger := klog.FromContext(ctx)
	n, err := Discover(ctx, d.FS)
	if err != nil {
		return nil, err
	}
	for _, e := range n.Errs {
		logger.Info("vGPU discovery problem", "err", e)
	}
	byBDF := map[string]device.GPU{}
	if d.NVML != nil {
		seen, err := d.NVML.Discover(ctx)
		if err != nil {
			logger.Error(err, "NVML discovery failed; naming every GPU by its PCI address")
		}
		for _, g := range seen {
			byBDF[strings.ToLower(g.PCIBusID)] = g
		}
	}
	out := make([]device.GPU, 0, len(n.GPUs))
	for _, g := range n.GPUs {
		dg := device.GPU{Index: g.Index, UUID: PCIID(g.BDF), Model: fmt.Sprintf("NVIDIA PCI device %s", g.DeviceID),
			PCIBusID: g.BDF, NUMANode: g.NUMANode, Minor: -1}
		if nv, ok := byBDF[g.BDF]; ok {
			dg.UUID, dg.Model, dg.MemoryMiB, dg.Minor = nv.UUID, nv.Model, nv.MemoryMiB, nv.Minor
			dg.Major, dg.MinorCC, dg.MIGEnabled, dg.MIGCapable = nv.Major, nv.MinorCC, nv.MIGEnabled, nv.MIGCapable
		}
		if g.Err != nil {
			logger.Info("GPU not fully readable in sysfs; its vGPU instances are left as they are", "gpu", g.BDF, "err", g.Err)
		}
		out = append(out, dg)
	}
	links(d.FS, out, byBDF)
	return out, nil
}
