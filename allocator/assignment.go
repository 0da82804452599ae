package allocator

import (
	"fmt"
	"slices"
	"time"

	"github.com/gpuslice/gpuslice/api"
)

// Assignment is where a pod's containers go on one node.
type Assignment struct {
	Node       string
	Containers []ContainerAssignment
	// Charges is what the pod holds on each device, by the charge rule of
	// api.PodCharge (app sum, sidecars for the pod's life, init peaks) over
	// the containers' charges on the device (Device.Charge: whole
	// instances on vgpu and passthrough GPUs).
	Charges []Charge
	// TopoRank is the weakest link rank inside any multi-GPU container
	// (api.LinkType.Rank), or MaxTopoRank when no container spans GPUs.
	TopoRank int
	// CPUMilli is the pod's host CPU request (PodRequest.CPUMilli), carried
	// so that policies can score the node's CPU after the pod.
	CPUMilli int64
}

// MaxTopoRank is the rank of the best link (api.LinkNVLink.Rank()).
const MaxTopoRank = 5

// ContainerAssignment is one container's devices (positions in Node.Devices,
// in the order the container will see them) and per-GPU share: the share
// the container asks, which the placement records; what it costs on each
// device is Device.Charge of it.
type ContainerAssignment struct {
	Name string
	// Init marks an init container, Sidecar a restartable one (Init too).
	Init    bool
	Sidecar bool
	Devices []int
	PerGPU  Units
}

// Charge is what a pod holds on one device.
type Charge struct {
	Device int
	Units  Units
}

// chargesOf computes the per-device charge of container assignments on
// node n (Fitter.chargesInto).
func chargesOf(n *Node, cs []ContainerAssignment) []Charge {
	return new(Fitter).chargesInto(n, cs)
}

// Placement converts the assignment into the pod annotation record.
func (a *Assignment) Placement(n *Node, now time.Time) *api.Placement {
	p := &api.Placement{Version: api.PlacementVersion, Node: a.Node, AssignedAt: now.UTC(), Containers: make([]api.ContainerPlacement, len(a.Containers))}
	for i, c := range a.Containers {
		cp := api.ContainerPlacement{Name: c.Name, Init: c.Init, Devices: make([]api.DeviceShare, len(c.Devices))}
		for j, d := range c.Devices {
			dev := n.Devices[d]
			cp.Devices[j] = api.DeviceShare{UUID: dev.UUID, Index: dev.Index, Slices: c.PerGPU.Slices, Core: c.PerGPU.Core, Slots: c.PerGPU.Slots}
		}
		p.Containers[i] = cp
	}
	return p
}

// AssignmentFromPlacement rebuilds an assignment from a pod's placement
// record on node n. r, when not nil, is the pod's request (the placement
// should be consistent with it, api.Placement.ConsistentWith): it says which
// init containers are sidecars and the order they start in, for the charge
// rule; without it the placement's own order is used and no container is a
// sidecar. The record holds the shares the containers asked; each is
// charged as its device charges it (Device.Charge: a whole instance on a
// vgpu or passthrough GPU), so a restarted extender charges what the one
// that placed the pod did. It fails when the record names a GPU the node
// does not have (see AddPlaceholders) or gives a container uneven shares.
func AssignmentFromPlacement(n *Node, p *api.Placement, r *PodRequest) (*Assignment, error) {
	a := &Assignment{Node: p.Node, Containers: make([]ContainerAssignment, 0, len(p.Containers)), TopoRank: MaxTopoRank}
	add := func(c *api.ContainerPlacement, sidecar bool) error {
		ca := ContainerAssignment{Name: c.Name, Init: c.Init, Sidecar: sidecar, Devices: make([]int, len(c.Devices))}
		for j, d := range c.Devices {
			pos := n.DeviceByUUID(d.UUID)
			if pos < 0 {
				return fmt.Errorf("placement of container %q names GPU %s that node %s does not have", c.Name, d.UUID, n.Name)
			}
			ca.Devices[j] = pos
			u := d.Units()
			if j > 0 && u != ca.PerGPU {
				return fmt.Errorf("placement of container %q has uneven shares", c.Name)
			}
			ca.PerGPU = u
		}
		a.Containers = append(a.Containers, ca)
		return nil
	}
	if r == nil {
		for i := range p.Containers {
			if err := add(&p.Containers[i], false); err != nil {
				return nil, err
			}
		}
	} else {
		// In the request's (pod spec) order; containers the request does
		// not know come last.
		done := make([]bool, len(p.Containers))
		for _, cr := range r.Containers {
			i := slices.IndexFunc(p.Containers, func(c api.ContainerPlacement) bool { return c.Name == cr.Name && c.Init == cr.Init })
			if i >= 0 && !done[i] {
				if err := add(&p.Containers[i], cr.Sidecar); err != nil {
					return nil, err
				}
				done[i] = true
			}
		}
		for i := range p.Containers {
			if !done[i] {
				if err := add(&p.Containers[i], false); err != nil {
					return nil, err
				}
			}
		}
	}
	a.Charges = chargesOf(n, a.Containers)
	return a, nil
}

// AddPlaceholders adds a placeholder (Device.Placeholder) for every GPU the
// placement names that the node does not list, so that the pod's shares on
// the node's other GPUs and on the vanished one stay charged. last returns
// a vanished GPU's last known capacity (zero when unknown). It returns how
// many placeholders it added; at most api.MaxGPUsPerNode devices are kept.
func (n *Node) AddPlaceholders(p *api.Placement, last func(uuid string) Units) int {
	added := 0
	for _, c := range p.Containers {
		for _, d := range c.Devices {
			if n.DeviceByUUID(d.UUID) >= 0 || len(n.Devices) >= api.MaxGPUsPerNode {
				continue
			}
			n.AddPlaceholder(d.UUID, d.Index, last(d.UUID))
			added++
		}
	}
	return added
}
