// Package inspect owns the per-node, per-GPU view of a gpuslice cluster:
// given the nodes (with their gpuslice.io/inventory annotation) and the pods
// (with their gpuslice.io/placement annotation) it computes, for every GPU,
// the gpu-mem slices, gpu-core units and sharing slots in use out of the
// GPU's total, which pods and containers hold them, and any inconsistency
// (a GPU over-committed, a placement naming a GPU or node that does not
// exist). Render prints the view as a table.
//
// The package is pure: it reads the objects it is given and calls no API.
// The demo (e2e/cmd/demo, `make demo`) and the end-to-end tests use it.
//
// Accounting follows the scheduler's, by the one charge rule api.PodCharge:
// within one pod, app containers add up, sidecars (restartable init
// containers) hold their share for the pod's life, and regular init
// containers run one at a time before the app containers. Each container's
// share is charged as its GPU charges it (api.ChargeOf): the share itself
// on GPUs of shared modes, one whole instance (api.GPU.InstanceUnits) on
// vgpu and passthrough GPUs. Pods in a terminal phase (api.IsTerminal)
// hold nothing.
package inspect

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/api"
)

// Usage is a used / total pair of one resource on one GPU.
type Usage struct {
	Used  int64
	Total int64
}

// Free returns Total - Used (negative when over-committed).
func (u Usage) Free() int64 { return u.Total - u.Used }

// Holder is one container's share of one GPU: the share it asked (its
// placement record), not what the GPU charges for it.
type Holder struct {
	// Pod is "namespace/name".
	Pod       string
	Container string
	Init      bool
	Slices    int64
	Core      int64
	Slots     int64
}

// GPU is the view of one GPU.
type GPU struct {
	Index     int
	UUID      string
	Model     string
	MemoryMiB int64
	Healthy   bool
	// Instance is one instance of a vgpu or passthrough GPU
	// (api.GPU.InstanceUnits), zero on GPUs of shared modes: each share on
	// the GPU is charged one.
	Instance api.Units
	// Slices, Core and Slots are what the pods on the GPU hold out of the
	// GPU's capacity, with the pod-level init container accounting and the
	// GPU's charge of each share.
	Slices Usage
	Core   Usage
	Slots  Usage
	// Holders lists every container holding a share, ordered by pod
	// (namespace, name), then in the placement's container order.
	Holders []Holder
}

// Overcommitted reports whether any resource of the GPU is used beyond its
// total.
func (g *GPU) Overcommitted() bool {
	return g.Slices.Free() < 0 || g.Core.Free() < 0 || g.Slots.Free() < 0
}

// Node is the view of one node.
type Node struct {
	Name     string
	SliceMiB int64
	// GPUs is ordered by index. Empty when the node has no inventory.
	GPUs []GPU
	// Pods is the number of pods holding a share on the node.
	Pods int
	// Err is set when the node's inventory annotation cannot be parsed.
	Err error
}

// View is the whole cluster view.
type View struct {
	// Nodes are the nodes with an inventory annotation (or a broken one),
	// ordered by name.
	Nodes []Node
	// Problems lists inconsistencies: placements that cannot be parsed, that
	// name a node or GPU that does not exist, or that disagree with the
	// pod's spec.nodeName.
	Problems []string
}

// Build computes the view of the given nodes and pods. Nodes without the
// inventory annotation are left out; pods without the placement annotation
// are ignored.
func Build(nodes []corev1.Node, pods []corev1.Pod) *View {
	v := &View{}
	byNode := map[string]int{}
	ns := slices.Clone(nodes)
	slices.SortFunc(ns, func(a, b corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	for i := range ns {
		raw, ok := ns[i].Annotations[api.AnnotationInventory]
		if !ok {
			continue
		}
		n := Node{Name: ns[i].Name}
		inv, err := api.ParseInventory(raw)
		if err != nil {
			n.Err = fmt.Errorf("node %s: %w", n.Name, err)
		} else {
			n.SliceMiB = inv.SliceMiB
			for _, g := range inv.GPUs {
				n.GPUs = append(n.GPUs, GPU{
					Index: g.Index, UUID: g.UUID, Model: g.Model, MemoryMiB: g.MemoryMiB, Healthy: g.Healthy,
					Instance: g.InstanceUnits(inv.SliceMiB),
					Slices:   Usage{Total: g.Slices}, Core: Usage{Total: g.CoreUnits}, Slots: Usage{Total: g.Slots},
				})
			}
			slices.SortFunc(n.GPUs, func(a, b GPU) int { return cmp.Compare(a.Index, b.Index) })
		}
		byNode[n.Name] = len(v.Nodes)
		v.Nodes = append(v.Nodes, n)
	}

	ps := slices.Clone(pods)
	slices.SortFunc(ps, func(a, b corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for i := range ps {
		p := &ps[i]
		raw, ok := p.Annotations[api.AnnotationPlacement]
		if !ok || api.IsTerminal(p) {
			continue
		}
		key := p.Namespace + "/" + p.Name
		pl, err := api.ParsePlacement(raw)
		if err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("pod %s: %v", key, err))
			continue
		}
		// The extender charges a placement only when it agrees with the
		// pod's own request (api.Placement.ConsistentWith); so does the view.
		req, err := api.ParsePodRequest(p)
		if err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("pod %s: request unreadable, the extender does not charge it: %v", key, err))
			continue
		}
		if err := pl.ConsistentWith(req, cmp.Or(p.Spec.NodeName, pl.Node)); err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("pod %s: placement inconsistent with its request, the extender does not charge it: %v", key, err))
			continue
		}
		ni, ok := byNode[pl.Node]
		if !ok || v.Nodes[ni].Err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("pod %s: placement on node %s which has no usable inventory", key, pl.Node))
			continue
		}
		if err := v.Nodes[ni].add(key, pl, sidecars(p)); err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("pod %s: %v", key, err))
		}
	}
	return v
}

// sidecars returns the names of a pod's sidecars (restartable init
// containers).
func sidecars(p *corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for i := range p.Spec.InitContainers {
		if api.IsSidecar(&p.Spec.InitContainers[i]) {
			out[p.Spec.InitContainers[i].Name] = true
		}
	}
	return out
}

// add charges one pod's placement to the node; sidecar names the pod's
// sidecars.
func (n *Node) add(pod string, pl *api.Placement, sidecar map[string]bool) error {
	pos := make(map[string]int, len(n.GPUs))
	for i, g := range n.GPUs {
		pos[g.UUID] = i
	}
	var charge api.PodCharge
	charge.Reset(len(n.GPUs))
	type held struct {
		gpu int
		h   Holder
	}
	var holders []held
	for _, c := range pl.Containers {
		for _, d := range c.Devices {
			i, ok := pos[d.UUID]
			if !ok {
				return fmt.Errorf("container %q: GPU %s is not on node %s", c.Name, d.UUID, n.Name)
			}
			charge.Add(i, c.Init, c.Init && sidecar[c.Name], api.ChargeOf(n.GPUs[i].Instance, d.Units()))
			holders = append(holders, held{i, Holder{Pod: pod, Container: c.Name, Init: c.Init, Slices: d.Slices, Core: d.Core, Slots: d.Slots}})
		}
	}
	for i := range n.GPUs {
		u := charge.On(i)
		g := &n.GPUs[i]
		g.Slices.Used += u.Slices
		g.Core.Used += u.Core
		g.Slots.Used += u.Slots
	}
	for _, h := range holders {
		n.GPUs[h.gpu].Holders = append(n.GPUs[h.gpu].Holders, h.h)
	}
	n.Pods++
	return nil
}

// Overcommitted returns one line per over-committed GPU, empty when none.
func (v *View) Overcommitted() []string {
	var out []string
	for _, n := range v.Nodes {
		for _, g := range n.GPUs {
			if g.Overcommitted() {
				out = append(out, fmt.Sprintf("node %s gpu %d (%s): slices %d/%d, core %d/%d, slots %d/%d",
					n.Name, g.Index, g.UUID, g.Slices.Used, g.Slices.Total, g.Core.Used, g.Core.Total, g.Slots.Used, g.Slots.Total))
			}
		}
	}
	return out
}

// GPU returns the GPU with the given UUID, or nil.
func (v *View) GPU(uuid string) *GPU {
	for i := range v.Nodes {
		for j := range v.Nodes[i].GPUs {
			if v.Nodes[i].GPUs[j].UUID == uuid {
				return &v.Nodes[i].GPUs[j]
			}
		}
	}
	return nil
}

// Node returns the node with the given name, or nil.
func (v *View) Node(name string) *Node {
	for i := range v.Nodes {
		if v.Nodes[i].Name == name {
			return &v.Nodes[i]
		}
	}
	return nil
}
