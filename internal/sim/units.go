package sim

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// Units names how the simulator maps the trace's GPU unit onto slices.
type Units string

// The unit modes.
const (
	// UnitsMilli is the published protocol's unit: one slice is one
	// milli-GPU, every GPU has 1000 slices and a sharing pod asks gpu_milli
	// slices (the default).
	UnitsMilli Units = "milli"
	// UnitsGiB is the extender's unit: one slice is 1 GiB (the extender's
	// default slice size), a GPU has its model's memory in slices (see
	// ModelGiB), a sharing pod asks a fixed GiB amount (ShareGiB) and a
	// whole-GPU pod the whole of each GPU it lands on.
	UnitsGiB Units = "gib"
)

// ParseUnits resolves a -units value ("" is UnitsMilli).
func ParseUnits(s string) (Units, error) {
	switch Units(s) {
	case "", UnitsMilli:
		return UnitsMilli, nil
	case UnitsGiB:
		return UnitsGiB, nil
	}
	return "", fmt.Errorf("unknown units %q (known: %s, %s)", s, UnitsMilli, UnitsGiB)
}

// ShareBaseGiB is the GPU a sharing pod's fraction is read against in gib
// mode: the smallest model of the trace (16 GiB).
const ShareBaseGiB = 16

// modelGiB is the memory of each trace GPU model, in GiB. V100M16, V100M32,
// P100, T4 and A10 are the trace README's disclosed sizes. G1, G2 and G3 are
// undisclosed; the simulator assumes 16, 24 and 32 GiB: one of each size the
// disclosed models have, in the order of their names, so that the cluster
// mixes three GPU sizes. It is an assumption, not a claim about the
// hardware (the node list has no G1; G2 is 4,392 of the 6,212 GPUs and G3
// 312), and it changes the gib figures.
var modelGiB = map[string]int64{
	"V100M16": 16, "V100M32": 32, "P100": 16, "T4": 16, "A10": 24,
	"G1": 16, "G2": 24, "G3": 32,
}

// ModelGiB returns the memory of a trace GPU model in GiB.
func ModelGiB(model string) (int64, bool) {
	g, ok := modelGiB[model]
	return g, ok
}

// ShareGiB returns a sharing pod's gpu-mem request in gib mode: its
// fraction of a ShareBaseGiB GPU, rounded up to whole GiB (at least 1). A
// real pod asks a fixed amount of memory, not a fraction of whatever GPU it
// gets, so a fixed amount is the realistic reading of the trace's fraction;
// the trace gives the fraction only, and reading it against the smallest
// model keeps every share within one GPU of any model.
func ShareGiB(gpuMilli int64) int64 {
	return max((gpuMilli*ShareBaseGiB+trace.MilliPerGPU-1)/trace.MilliPerGPU, 1)
}

// unitMap maps trace pods and nodes onto slices.
type unitMap struct {
	name Units
	// capacity is the slices of one GPU of a model.
	capacity func(model string) (int64, error)
	// share is the slices a sharing pod of gpu_milli asks.
	share func(gpuMilli int64) int64
}

func newUnitMap(u Units) (unitMap, error) {
	switch u {
	case "", UnitsMilli:
		return unitMap{name: UnitsMilli,
			capacity: func(string) (int64, error) { return SlicesPerGPU, nil },
			share:    func(m int64) int64 { return m }}, nil
	case UnitsGiB:
		return unitMap{name: UnitsGiB, capacity: gibCapacity, share: ShareGiB}, nil
	}
	return unitMap{}, fmt.Errorf("unknown units %q", u)
}

func gibCapacity(model string) (int64, error) {
	g, ok := ModelGiB(model)
	if !ok {
		known := make([]string, 0, len(modelGiB))
		for m := range modelGiB {
			known = append(known, m)
		}
		sort.Strings(known)
		return 0, fmt.Errorf("gib units: no memory size for GPU model %q (known: %s)", model, strings.Join(known, ", "))
	}
	return g, nil
}

// perGPU returns the slices a GPU pod takes on each of its GPUs when they
// have capacity slices each: its share for a sharing pod, the whole GPU
// otherwise.
func (m unitMap) perGPU(p trace.Pod, capacity int64) int64 {
	if p.Sharing() {
		return m.share(p.GPUMilli)
	}
	return capacity
}

// request maps a trace pod onto a gpuslice pod request on GPUs of capacity
// slices: one container that asks perGPU slices on each of num_gpu GPUs, the
// pod's CPU, and its allowed models. A pod with no GPU gets no GPU
// container: it fits any node with the CPU.
func (m unitMap) request(p trace.Pod, capacity int64) *allocator.PodRequest {
	r := &allocator.PodRequest{CPUMilli: p.CPUMilli, Models: p.Models}
	if p.NumGPU > 0 {
		k := int64(p.NumGPU)
		r.Containers = []allocator.ContainerRequest{{Name: "main", Slices: k * m.perGPU(p, capacity), Count: k}}
	}
	return r
}

// cluster builds allocator nodes from a node list: each GPU has its
// model's capacity in slices, and the node tracks its CPU.
func (m unitMap) cluster(nodes []trace.Node) ([]*allocator.Node, error) {
	out := make([]*allocator.Node, len(nodes))
	for i, tn := range nodes {
		c, err := m.capacity(tn.Model)
		if err != nil && tn.GPUs > 0 {
			return nil, fmt.Errorf("node %s: %w", tn.Name, err)
		}
		slots := int64(SlotsPerGPU)
		if c > slots {
			slots = c
		}
		devs := make([]allocator.Device, tn.GPUs)
		for g := range devs {
			devs[g] = allocator.Device{
				Index:    g,
				UUID:     fmt.Sprintf("%s-gpu%d", tn.Name, g),
				Model:    tn.Model,
				Capacity: allocator.Units{Slices: c, Core: CorePerGPU, Slots: slots},
				Healthy:  true,
			}
		}
		n := allocator.NewNode(tn.Name, devs)
		n.CPUCapacity = tn.CPUMilli
		out[i] = n
	}
	return out, nil
}

// nominalCapacity returns the GPU capacity a learning policy observes a
// whole-GPU pod against: the largest GPU among the nodes' models the pod
// may use (0 when there is none). The extender observes a request before
// it knows the node, and a whole-GPU pod's request depends on the GPU, so
// in gib mode the policy learns it as a request for the largest GPU it may
// get: the learned class then never counts a part-used GPU as usable by a
// whole-GPU pod (it does count a wholly free smaller GPU as unusable).
// Learning it against the smallest GPU instead counts a part-used larger
// GPU with that much free as usable, and measured worse for the
// fragmentation-aware policies (docs/trace-benchmark.md). In milli mode
// every GPU is the same.
func nominalCapacity(nodes []*allocator.Node, models []string) int64 {
	var out int64
	for _, n := range nodes {
		for i := range n.Devices {
			d := &n.Devices[i]
			if len(models) == 0 || slices.Contains(models, d.Model) {
				out = max(out, d.Capacity.Slices)
			}
		}
	}
	return out
}
