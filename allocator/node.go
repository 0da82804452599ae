package allocator

import (
	"fmt"
	"slices"

	"github.com/gpuslice/gpuslice/api"
)

// Device is the static description of one GPU.
type Device struct {
	Index    int
	UUID     string
	Model    string
	Capacity Units
	Healthy  bool
	NUMANode int
	// Enforcement is what the GPU's isolation enforces (api.GPU.Enforces).
	Enforcement api.Enforcement
	// Isolation is the GPU's isolation mode; only pods whose sandbox mode
	// it allows may use it (api.IsolationAllowed). Empty is a shared mode.
	Isolation api.IsolationMode
	// Instance is one instance of a whole-instance GPU (vgpu, passthrough:
	// api.GPU.InstanceUnits), zero on GPUs of shared modes. A container's
	// share on the GPU must fit one instance and is charged the whole
	// instance (Charge).
	Instance Units
	// Placeholder marks a GPU that vanished from the node's inventory while
	// pods still hold shares on it: it keeps those shares charged, is never
	// chosen (Healthy is false), and is not reported as over-committed.
	Placeholder bool
}

// Node is one node's GPUs and their usage.
type Node struct {
	Name    string
	Devices []Device
	// Link[i][j] is the api.LinkType rank between device positions i and j
	// (0 unknown). Nil when the node publishes no topology.
	Link [][]int8
	// Used holds the units taken on each device, by position in Devices.
	Used []Units
	// MaxGPUsPerContainer, when positive, is the most GPUs one container may
	// span on the node (api.Inventory.MaxGPUsPerContainer).
	MaxGPUsPerContainer int
	// CPUCapacity and CPUUsed are host CPU in milli-cores. The extender
	// leaves them zero (kube-scheduler fits CPU itself); the trace simulator
	// sets them because the published fit includes CPU. Zero capacity means
	// CPU is not checked.
	CPUCapacity, CPUUsed int64
}

// NewNode returns a node with the given devices and no usage.
func NewNode(name string, devices []Device) *Node {
	return &Node{Name: name, Devices: devices, Used: make([]Units, len(devices))}
}

// NodeFromInventory builds a Node from a device plugin inventory.
func NodeFromInventory(name string, inv *api.Inventory) *Node {
	devs := make([]Device, len(inv.GPUs))
	pos := make(map[int]int, len(inv.GPUs))
	for i, g := range inv.GPUs {
		devs[i] = Device{
			Index:    g.Index,
			UUID:     g.UUID,
			Model:    g.Model,
			Capacity: Units{Slices: g.Slices, Core: g.CoreUnits, Slots: g.Slots},
			Healthy:  g.Healthy && (g.Isolation == "" || g.Isolation.Known()),
			NUMANode: g.NUMANode,

			Enforcement: g.Enforces(),
			Isolation:   g.Isolation,
			Instance:    g.InstanceUnits(inv.SliceMiB),
		}
		pos[g.Index] = i
	}
	n := NewNode(name, devs)
	n.MaxGPUsPerContainer = inv.MaxGPUsPerContainer
	hasLinks := false
	for _, g := range inv.GPUs {
		if len(g.Links) > 0 {
			hasLinks = true
			break
		}
	}
	if hasLinks {
		n.Link = make([][]int8, len(devs))
		for i := range n.Link {
			n.Link[i] = make([]int8, len(devs))
		}
		for i, g := range inv.GPUs {
			for _, l := range g.Links {
				if j, ok := pos[l.Peer]; ok {
					r := int8(l.Type.Rank())
					n.Link[i][j] = max(n.Link[i][j], r)
					n.Link[j][i] = max(n.Link[j][i], r)
				}
			}
		}
	}
	return n
}

// AddPlaceholder appends a placeholder for a GPU the inventory no longer
// lists, so that the shares pods hold on it stay charged, and returns its
// position. capacity is the GPU's last known capacity (zero when unknown).
func (n *Node) AddPlaceholder(uuid string, index int, capacity Units) int {
	// Clip: a Clone shares Devices and Link, appending must not write
	// into the original's arrays.
	n.Devices = append(slices.Clip(n.Devices), Device{Index: index, UUID: uuid, Capacity: capacity, NUMANode: -1, Placeholder: true})
	n.Used = append(slices.Clip(n.Used), Units{})
	if n.Link != nil {
		link := make([][]int8, len(n.Devices))
		for i := range n.Link {
			link[i] = append(slices.Clip(n.Link[i]), 0)
		}
		link[len(link)-1] = make([]int8, len(n.Devices))
		n.Link = link
	}
	return len(n.Devices) - 1
}

// Charge returns what a container's per-GPU share costs on the device: the
// share itself on a GPU of a shared mode, one whole instance on a vgpu or
// passthrough GPU (api.ChargeOf). Every charge of a share on a device, in
// Fit, in the charges of an assignment and in the policies' scores, is
// this one.
func (d *Device) Charge(share Units) Units { return api.ChargeOf(d.Instance, share) }

// FitsInstance reports whether a per-GPU share can be served by one
// instance of the device (api.FitsInstance; always on shared GPUs).
func (d *Device) FitsInstance(share Units) bool { return api.FitsInstance(d.Instance, share) }

// Free returns the free units of device position i.
func (n *Node) Free(i int) Units { return n.Devices[i].Capacity.Sub(n.Used[i]) }

// DeviceByUUID returns the position of the device with the UUID, or -1.
func (n *Node) DeviceByUUID(uuid string) int {
	for i := range n.Devices {
		if n.Devices[i].UUID == uuid {
			return i
		}
	}
	return -1
}

// LinkRank returns the link rank between device positions i and j.
func (n *Node) LinkRank(i, j int) int {
	if n.Link == nil || i == j {
		return 0
	}
	return int(n.Link[i][j])
}

// Apply adds (sign > 0) or removes (sign < 0) the charges on the node.
func (n *Node) Apply(charges []Charge, sign int) {
	for _, c := range charges {
		if sign >= 0 {
			n.Used[c.Device] = n.Used[c.Device].Add(c.Units)
		} else {
			n.Used[c.Device] = n.Used[c.Device].Sub(c.Units)
		}
	}
}

// Clone returns a deep copy of the node's usage sharing the static parts.
func (n *Node) Clone() *Node {
	c := *n
	c.Used = append([]Units(nil), n.Used...)
	return &c
}

// Overcommitted returns an error naming the first device whose usage
// exceeds its capacity, or nil.
func (n *Node) Overcommitted() error {
	for i := range n.Devices {
		if f := n.Free(i); f.AnyNegative() && !n.Devices[i].Placeholder {
			return fmt.Errorf("node %s gpu %s over-committed: used %+v of %+v", n.Name, n.Devices[i].UUID, n.Used[i], n.Devices[i].Capacity)
		}
	}
	return nil
}

// spanStatus rejects a request with a container that spans more GPUs than
// the node's isolation allows, or returns nil.
func (n *Node) spanStatus(r *PodRequest) *Status {
	if n.MaxGPUsPerContainer <= 0 {
		return nil
	}
	for _, c := range r.Containers {
		if c.HasGPU() && c.GPUs() > n.MaxGPUsPerContainer {
			return &Status{Code: UnschedulableAndUnresolvable, Reason: ReasonSpanNotAllowed, Container: c.Name,
				GPUs: c.GPUs(), SpanAllowed: n.MaxGPUsPerContainer}
		}
	}
	return nil
}
