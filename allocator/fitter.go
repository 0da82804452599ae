package allocator

import "github.com/gpuslice/gpuslice/api"

// Fitter runs Fit and NodeScore with reusable buffers, so that the
// extender's filter, which fits a pod on thousands of nodes, allocates
// nothing per feasible node. The Assignment a Fitter returns is valid only
// until its next call; Bind uses the package-level Fit, whose result is its
// own. A Fitter is not safe for concurrent use: use one per goroutine.
type Fitter struct {
	a          Assignment
	containers []ContainerAssignment
	order      []int
	slot       []int
	devs       []int
	charges    []Charge
	extra      []Units
	side       []Units
	charge     api.PodCharge
	views      [4]NodeView
}

// reset prepares the buffers for a node of n devices.
func (f *Fitter) reset(n int) {
	f.devs = f.devs[:0]
	if cap(f.extra) < n {
		f.extra = make([]Units, n)
		f.side = make([]Units, n)
	}
	f.extra = f.extra[:n]
	f.side = f.side[:n]
	clear(f.extra)
	clear(f.side)
}

// chargesInto computes the per-device charge of container assignments (in
// pod spec order) on node n into the Fitter's buffer: each container's
// share charged as the device charges it (Device.Charge), combined by the
// rule of api.PodCharge.
func (f *Fitter) chargesInto(n *Node, cs []ContainerAssignment) []Charge {
	f.charge.Reset(len(n.Devices))
	for _, c := range cs {
		for _, d := range c.Devices {
			f.charge.Add(d, c.Init, c.Sidecar, n.Devices[d].Charge(c.PerGPU))
		}
	}
	out := f.charges[:0]
	for i := 0; i < len(n.Devices); i++ {
		if u := f.charge.On(i); !u.IsZero() {
			out = append(out, Charge{Device: i, Units: u})
		}
	}
	f.charges = out[:0]
	return out[:len(out):len(out)]
}
