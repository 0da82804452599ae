// Package nvml owns GPU discovery for the gpuslice device plugin: a small
// interface over go-nvml (Library) and the translation of what NVML reports
// (UUID, model, memory, PCI bus id, NUMA node, MIG mode, compute capability,
// pairwise NVLink and PCIe topology) into GPU records, plus the probe that
// tells whether a GPU is still present.
//
// It never starts anything on its own; callers own the NVML session (Init /
// Shutdown) and decide how often to probe.
package nvml

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// Library is the part of go-nvml the plugin uses. gonvml.New() and the
// go-nvml mock servers (pkg/nvml/mock/dgxa100, dgxh100, ...) implement it.
type Library interface {
	Init() gonvml.Return
	Shutdown() gonvml.Return
	SystemGetDriverVersion() (string, gonvml.Return)
	SystemGetCudaDriverVersion() (int, gonvml.Return)
	DeviceGetCount() (int, gonvml.Return)
	DeviceGetHandleByIndex(int) (gonvml.Device, gonvml.Return)
	DeviceGetHandleByUUID(string) (gonvml.Device, gonvml.Return)
	EventSetCreate() (gonvml.EventSet, gonvml.Return)
}

// NewLibrary returns the real NVML library (loaded with dlopen on Init).
func NewLibrary() Library { return gonvml.New() }

// Sysfs answers what NVML may not know: the NUMA node of a PCI device.
type Sysfs interface {
	// NUMANode returns the NUMA node of the PCI device (sysfs bus id form
	// "0000:07:00.0"), or -1 when the platform has no NUMA information.
	NUMANode(busID string) (int, error)
}

// HostSysfs reads /sys (Root "/" unless set).
type HostSysfs struct{ Root string }

// NUMANode implements Sysfs.
func (s HostSysfs) NUMANode(busID string) (int, error) {
	root := s.Root
	if root == "" {
		root = "/"
	}
	b, err := os.ReadFile(filepath.Join(root, "sys/bus/pci/devices", busID, "numa_node"))
	if err != nil {
		return -1, fmt.Errorf("read numa node of %s: %w", busID, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1, fmt.Errorf("parse numa node of %s: %w", busID, err)
	}
	return n, nil
}

// Error wraps an NVML return code.
type Error struct {
	Op  string
	Ret gonvml.Return
}

func (e *Error) Error() string { return fmt.Sprintf("nvml %s: %s", e.Op, gonvml.ErrorString(e.Ret)) }

func nvErr(op string, ret gonvml.Return) error {
	if ret == gonvml.SUCCESS {
		return nil
	}
	return &Error{Op: op, Ret: ret}
}

// IsLost reports whether err says the GPU is gone (lost, not found, fallen
// off the bus, reset in progress).
func IsLost(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Ret {
	case gonvml.ERROR_GPU_IS_LOST, gonvml.ERROR_NOT_FOUND, gonvml.ERROR_RESET_REQUIRED, gonvml.ERROR_INVALID_ARGUMENT:
		return true
	}
	return false
}

// Discovery turns NVML into device.GPU records.
type Discovery struct {
	Lib   Library
	Sysfs Sysfs
}

// NormalizeBusID turns NVML's "00000000:07:00.0" into sysfs's "0000:07:00.0".
func NormalizeBusID(s string) string {
	s = strings.ToLower(strings.TrimRight(s, "\x00"))
	if i := strings.IndexByte(s, ':'); i > 4 {
		s = s[i-4:]
	}
	return s
}

func busID(p gonvml.PciInfo) string {
	var b strings.Builder
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return NormalizeBusID(b.String())
}

// Discover enumerates the GPUs. MIG-enabled GPUs are returned with
// MIGEnabled set; the caller decides whether to skip them.
func (d *Discovery) Discover(ctx context.Context) ([]device.GPU, error) {
	logger := klog.FromContext(ctx)
	n, ret := d.Lib.DeviceGetCount()
	if err := nvErr("DeviceGetCount", ret); err != nil {
		return nil, err
	}
	gpus := make([]device.GPU, 0, n)
	devs := make([]gonvml.Device, 0, n)
	for i := 0; i < n; i++ {
		dev, ret := d.Lib.DeviceGetHandleByIndex(i)
		if err := nvErr("DeviceGetHandleByIndex", ret); err != nil {
			return nil, fmt.Errorf("gpu %d: %w", i, err)
		}
		g, err := d.describe(ctx, i, dev)
		if err != nil {
			return nil, fmt.Errorf("gpu %d: %w", i, err)
		}
		gpus = append(gpus, g)
		devs = append(devs, dev)
	}
	if err := d.topology(gpus, devs); err != nil {
		return nil, err
	}
	logger.V(2).Info("Discovered GPUs", "count", len(gpus))
	return gpus, nil
}

func (d *Discovery) describe(ctx context.Context, i int, dev gonvml.Device) (device.GPU, error) {
	g := device.GPU{Index: i, NUMANode: -1}
	var ret gonvml.Return
	if g.UUID, ret = dev.GetUUID(); ret != gonvml.SUCCESS {
		return g, nvErr("GetUUID", ret)
	}
	if g.Model, ret = dev.GetName(); ret != gonvml.SUCCESS {
		return g, nvErr("GetName", ret)
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != gonvml.SUCCESS {
		return g, nvErr("GetMemoryInfo", ret)
	}
	g.MemoryMiB = int64(mem.Total / (1 << 20))
	pci, ret := dev.GetPciInfo()
	if ret != gonvml.SUCCESS {
		return g, nvErr("GetPciInfo", ret)
	}
	g.PCIBusID = busID(pci)
	if m, ret := dev.GetMinorNumber(); ret == gonvml.SUCCESS {
		g.Minor = m
	}
	if ma, mi, ret := dev.GetCudaComputeCapability(); ret == gonvml.SUCCESS {
		g.Major, g.MinorCC = ma, mi
	}
	if cur, _, ret := dev.GetMigMode(); ret == gonvml.SUCCESS {
		g.MIGCapable, g.MIGEnabled = true, cur == gonvml.DEVICE_MIG_ENABLE
	}
	if node, ret := dev.GetNumaNodeId(); ret == gonvml.SUCCESS {
		g.NUMANode = node
	} else if d.Sysfs != nil && g.PCIBusID != "" {
		node, err := d.Sysfs.NUMANode(g.PCIBusID)
		if err != nil {
			klog.FromContext(ctx).V(2).Info("NUMA node unknown", "gpu", g.UUID, "err", err)
		} else {
			g.NUMANode = node
		}
	}
	return g, nil
}

// nvlinkPeers counts, per remote PCI bus id, the active NVLinks of dev, and
// separately the links that end on an NVSwitch.
func nvlinkPeers(dev gonvml.Device) (map[string]int, int) {
	peers := map[string]int{}
	switches := 0
	for l := 0; l < gonvml.NVLINK_MAX_LINKS; l++ {
		st, ret := dev.GetNvLinkState(l)
		if ret != gonvml.SUCCESS {
			break // no (more) NVLinks, or not supported
		}
		if st != gonvml.FEATURE_ENABLED {
			continue
		}
		if t, ret := dev.GetNvLinkRemoteDeviceType(l); ret == gonvml.SUCCESS && t == gonvml.NVLINK_DEVICE_TYPE_SWITCH {
			switches++
			continue
		}
		pci, ret := dev.GetNvLinkRemotePciInfo(l)
		if ret != gonvml.SUCCESS {
			continue
		}
		peers[busID(pci)]++
	}
	return peers, switches
}

func levelLink(l gonvml.GpuTopologyLevel) api.LinkType {
	switch l {
	case gonvml.TOPOLOGY_INTERNAL, gonvml.TOPOLOGY_SINGLE, gonvml.TOPOLOGY_MULTIPLE:
		return api.LinkPCIeSwitch
	case gonvml.TOPOLOGY_HOSTBRIDGE:
		return api.LinkHostBridge
	case gonvml.TOPOLOGY_NODE:
		return api.LinkSameNUMA
	default:
		return api.LinkCrossSocket
	}
}

// topology fills Links for every pair: NVLink when the two share direct
// NVLinks (or both reach NVSwitches; the count is the smaller number of
// switch links), otherwise the PCIe common-ancestor level.
func (d *Discovery) topology(gpus []device.GPU, devs []gonvml.Device) error {
	type nv struct {
		peers    map[string]int
		switches int
	}
	links := make([]nv, len(devs))
	for i, dev := range devs {
		p, s := nvlinkPeers(dev)
		links[i] = nv{p, s}
	}
	for i := range gpus {
		for j := range gpus {
			if i == j {
				continue
			}
			n := links[i].peers[gpus[j].PCIBusID]
			if n == 0 && links[i].switches > 0 && links[j].switches > 0 {
				n = min(links[i].switches, links[j].switches)
			}
			if n > 0 {
				gpus[i].Links = append(gpus[i].Links, api.Link{Peer: gpus[j].Index, Type: api.LinkNVLink, NVLinks: n})
				continue
			}
			lvl, ret := devs[i].GetTopologyCommonAncestor(devs[j])
			if ret != gonvml.SUCCESS {
				if ret == gonvml.ERROR_NOT_SUPPORTED {
					continue
				}
				return fmt.Errorf("topology %s-%s: %w", gpus[i].UUID, gpus[j].UUID, nvErr("GetTopologyCommonAncestor", ret))
			}
			gpus[i].Links = append(gpus[i].Links, api.Link{Peer: gpus[j].Index, Type: levelLink(lvl)})
		}
		sort.Slice(gpus[i].Links, func(a, b int) bool { return gpus[i].Links[a].Peer < gpus[i].Links[b].Peer })
	}
	return nil
}

// Probe reports whether the GPU with this UUID still answers. A lost GPU
// gives an error for which IsLost is true.
func (d *Discovery) Probe(uuid string) error {
	dev, ret := d.Lib.DeviceGetHandleByUUID(uuid)
	if err := nvErr("DeviceGetHandleByUUID", ret); err != nil {
		return err
	}
	if _, ret := dev.GetMemoryInfo(); ret != gonvml.SUCCESS {
		return nvErr("GetMemoryInfo", ret)
	}
	return nil
}

// MemoryInfo returns the GPU's used and total memory in bytes as NVML
// reports them (for the device plugin's metrics).
func (d *Discovery) MemoryInfo(uuid string) (used, total uint64, err error) {
	dev, ret := d.Lib.DeviceGetHandleByUUID(uuid)
	if err := nvErr("DeviceGetHandleByUUID", ret); err != nil {
		return 0, 0, err
	}
	mem, ret := dev.GetMemoryInfo()
	if err := nvErr("GetMemoryInfo", ret); err != nil {
		return 0, 0, err
	}
	return mem.Used, mem.Total, nil
}
