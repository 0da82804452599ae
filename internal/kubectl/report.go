package kubectl

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/internal/inspect"
)

// Report is what inspect prints: the per-GPU view, the stale placements,
// the problems found, and the cluster summary. Its JSON form is the -o json
// output.
type Report struct {
	Nodes    []NodeReport `json:"nodes"`
	Stale    []StalePod   `json:"stalePods,omitempty"`
	Problems []string     `json:"problems,omitempty"`
	Summary  Summary      `json:"summary"`
}

// NodeReport is one node with a gpuslice inventory.
type NodeReport struct {
	Name     string `json:"name"`
	SliceMiB int64  `json:"sliceMiB,omitempty"`
	// MaxGPUsPerContainer is the inventory's span limit (0: none).
	MaxGPUsPerContainer int `json:"maxGPUsPerContainer,omitempty"`
	// Cordoned is true when the node takes no new pods (spec.unschedulable).
	Cordoned bool `json:"cordoned,omitempty"`
	// Pods is the number of pods holding a share on the node.
	Pods int `json:"pods"`
	// Error says why the node's inventory cannot be read.
	Error string      `json:"error,omitempty"`
	GPUs  []GPUReport `json:"gpus"`
}

// Amount is the used, free and total count of one resource on one GPU.
type Amount struct {
	Used  int64 `json:"used"`
	Free  int64 `json:"free"`
	Total int64 `json:"total"`
}

// GPUReport is one GPU.
type GPUReport struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Model     string `json:"model"`
	MemoryMiB int64  `json:"memoryMiB"`
	NUMANode  int    `json:"numaNode"`
	Healthy   bool   `json:"healthy"`
	// Reason says why the GPU is unhealthy.
	Reason    string `json:"reason,omitempty"`
	Isolation string `json:"isolation"`
	VGPUType  string `json:"vgpuType,omitempty"`
	// InstanceMiB and Instances describe a vgpu or passthrough GPU: one
	// instance's framebuffer and how many the GPU has. Each container on
	// the GPU is charged one whole instance.
	InstanceMiB int64  `json:"instanceMiB,omitempty"`
	Instances   int64  `json:"instances,omitempty"`
	Enforcement string `json:"enforcement"`
	Slices      Amount `json:"slices"`
	Core        Amount `json:"core"`
	Slots       Amount `json:"slots"`
	// Overcommitted is true when any resource is used beyond its total.
	Overcommitted bool      `json:"overcommitted,omitempty"`
	Holders       []Holder  `json:"holders,omitempty"`
	State         FreeState `json:"state"`
}

// Holder is one container's share of a GPU.
type Holder struct {
	// Pod is "namespace/name".
	Pod       string `json:"pod"`
	Container string `json:"container"`
	Init      bool   `json:"init,omitempty"`
	Slices    int64  `json:"slices"`
	Core      int64  `json:"core"`
	Slots     int64  `json:"slots"`
}

// FreeState classes a GPU for the fragmentation figure.
type FreeState string

// GPU states.
const (
	// StateFree: nothing is held on the GPU.
	StateFree FreeState = "free"
	// StatePartial: some of the GPU is held and it still has room (a free
	// slice and a free slot).
	StatePartial FreeState = "partial"
	// StateFull: no free slice or no free sharing slot is left.
	StateFull FreeState = "full"
	// StateUnhealthy: the GPU takes no new pods.
	StateUnhealthy FreeState = "unhealthy"
)

// Input is what a report is built from: the objects as listed from the API
// server, and the time ages are measured at.
type Input struct {
	Nodes []corev1.Node
	Pods  []corev1.Pod
	Now   time.Time
	// Node, when set, restricts the report to one node.
	Node string
}

// BuildReport computes the inspect report. The accounting is
// internal/inspect's; this adds what the inventory says about each GPU
// (isolation, health reason), the stale placements and the summary.
func BuildReport(in Input) *Report {
	v := inspect.Build(in.Nodes, in.Pods)
	invs := inventories(in.Nodes)
	cordoned := map[string]bool{}
	for i := range in.Nodes {
		cordoned[in.Nodes[i].Name] = in.Nodes[i].Spec.Unschedulable
	}
	r := &Report{Nodes: []NodeReport{}}
	for _, n := range v.Nodes {
		if in.Node != "" && n.Name != in.Node {
			continue
		}
		nr := NodeReport{Name: n.Name, SliceMiB: n.SliceMiB, Cordoned: cordoned[n.Name], Pods: n.Pods, GPUs: []GPUReport{}}
		if n.Err != nil {
			nr.Error = n.Err.Error()
		}
		inv := invs[n.Name]
		if inv != nil {
			nr.MaxGPUsPerContainer = inv.MaxGPUsPerContainer
			for _, p := range inv.Problems {
				r.Problems = append(r.Problems, fmt.Sprintf("node %s: device plugin: %s", n.Name, p))
			}
		}
		for _, g := range n.GPUs {
			nr.GPUs = append(nr.GPUs, gpuReport(g, inventoryGPU(inv, g.UUID)))
		}
		r.Nodes = append(r.Nodes, nr)
	}
	r.Problems = append(r.Problems, v.Problems...)
	r.Stale = stalePods(in.Pods, in.Node, in.Now)
	var pending []string
	if in.Node == "" {
		pending = pendingPods(in.Pods)
	}
	r.Summary = summarize(r.Nodes, pending)
	return r
}

// inventories parses every node's inventory (nil where it is missing or
// unreadable; internal/inspect reports those).
func inventories(nodes []corev1.Node) map[string]*api.Inventory {
	out := make(map[string]*api.Inventory, len(nodes))
	for i := range nodes {
		if raw, ok := nodes[i].Annotations[api.AnnotationInventory]; ok {
			if inv, err := api.ParseInventory(raw); err == nil {
				out[nodes[i].Name] = inv
			}
		}
	}
	return out
}

func inventoryGPU(inv *api.Inventory, uuid string) *api.GPU {
	if inv == nil {
		return nil
	}
	for i := range inv.GPUs {
		if inv.GPUs[i].UUID == uuid {
			return &inv.GPUs[i]
		}
	}
	return nil
}

func amount(u inspect.Usage) Amount { return Amount{Used: u.Used, Free: u.Free(), Total: u.Total} }

func gpuReport(g inspect.GPU, ig *api.GPU) GPUReport {
	gr := GPUReport{
		Index: g.Index, UUID: g.UUID, Model: g.Model, MemoryMiB: g.MemoryMiB, Healthy: g.Healthy, NUMANode: -1,
		Slices: amount(g.Slices), Core: amount(g.Core), Slots: amount(g.Slots), Overcommitted: g.Overcommitted(),
	}
	if ig != nil {
		gr.NUMANode, gr.Reason, gr.VGPUType = ig.NUMANode, ig.Reason, ig.VGPUType
		if ig.Isolation.WholeInstance() {
			gr.InstanceMiB, gr.Instances = ig.InstanceMiB, ig.Slots
		}
	}
	gr.Isolation, gr.Enforcement = isolation(ig)
	for _, h := range g.Holders {
		gr.Holders = append(gr.Holders, Holder(h))
	}
	gr.State = freeState(gr)
	return gr
}

// isolation names a GPU's isolation mode and what it enforces: the level
// (api.Enforcement) and how.
func isolation(ig *api.GPU) (mode, enforcement string) {
	g := api.GPU{Isolation: api.IsolationNone}
	if ig != nil {
		g = *ig
	}
	m, level := g.Isolation, g.Enforces()
	var how string
	switch m {
	case "", api.IsolationNone:
		m, how = api.IsolationNone, "time-sliced"
	case api.IsolationMPS:
		how = "MPS, env-set limits up to the daemon's ceiling"
		if level == api.EnforcementBinding {
			how = "MPS v3 namespace, hard memory limit"
		}
	case api.IsolationVGPU:
		how = "vGPU"
		if g.VGPUType != "" {
			how = "vGPU " + g.VGPUType
		}
	case api.IsolationPassthrough:
		how = "VFIO passthrough"
	default:
		return string(m), "unknown mode: not schedulable"
	}
	return string(m), string(level) + " (" + how + ")"
}

// isolationCell is the ISOLATION column: the mode, and for vgpu and
// passthrough GPUs the vGPU type and the instances each container is
// charged one of ("vgpu GRID T4-4Q, 4 instances of 4096 MiB").
func isolationCell(g GPUReport) string {
	if g.Instances <= 0 {
		return g.Isolation
	}
	s := g.Isolation
	if g.VGPUType != "" {
		s += " " + g.VGPUType
	}
	noun := "instances"
	if g.Instances == 1 {
		noun = "instance"
	}
	return fmt.Sprintf("%s, %d %s of %d MiB", s, g.Instances, noun, g.InstanceMiB)
}

func freeState(g GPUReport) FreeState {
	switch {
	case !g.Healthy:
		return StateUnhealthy
	case g.Slices.Used == 0 && g.Core.Used == 0 && g.Slots.Used == 0:
		return StateFree
	case g.Slices.Free > 0 && g.Slots.Free > 0:
		return StatePartial
	}
	return StateFull
}

// pendingPods returns the gpuslice pods not bound to a node yet, by
// namespace/name.
func pendingPods(pods []corev1.Pod) []string {
	var out []string
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName != "" || api.IsTerminal(p) || p.DeletionTimestamp != nil {
			continue
		}
		if req, err := api.ParsePodRequest(p); err != nil || req.HasGPU() {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
