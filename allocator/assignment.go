package allocator

import (
	"fmt"
	"time"

	"github.com/gpuslice/gpuslice/api"
)

// Assignment is where a pod's containers go on one node.
type Assignment struct {
	Node       string
	Containers []ContainerAssignment
	// Charges is what the pod holds on each device, by the charge rule of
	// api.PodCharge (app sum, sidecars for the pod's life, init peaks).
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
// in the order the container will see them) and per-GPU share.
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

// Total returns the sum of the charges.
func (a *Assignment) Total() Units {
	var t Units
	for _, c := range a.Charges {
		t = t.Add(c.Units)
	}
	return t
}

// chargesOf computes the per-device charge of container assignments.
func chargesOf(n int, cs []ContainerAssignment) []Charge {
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
// record on node n. r, when not nil, is the pod's request: it tells which
// init containers are sidecars, for the charge rule. It fails when the
// record names a GPU the node does not have or gives a container uneven
// shares.
func AssignmentFromPlacement(n *Node, p *api.Placement, r *PodRequest) (*Assignment, error) {
	a := &Assignment{Node: p.Node, Containers: make([]ContainerAssignment, len(p.Containers)), TopoRank: MaxTopoRank}
	for i, c := range p.Containers {
		ca := ContainerAssignment{Name: c.Name, Init: c.Init, Devices: make([]int, len(c.Devices))}
		if r != nil && c.Init {
			if cr := r.Container(c.Name, true); cr != nil {
				ca.Sidecar = cr.Sidecar
			}
		}
		for j, d := range c.Devices {
			pos := n.DeviceByUUID(d.UUID)
			if pos < 0 {
				return nil, fmt.Errorf("placement of container %q names GPU %s that node %s does not have", c.Name, d.UUID, n.Name)
			}
			ca.Devices[j] = pos
			u := d.Units()
			if j > 0 && u != ca.PerGPU {
				return nil, fmt.Errorf("placement of container %q has uneven shares", c.Name)
			}
			ca.PerGPU = u
		}
		a.Containers[i] = ca
	}
	a.Charges = chargesOf(len(n.Devices), a.Containers)
	return a, nil
}
