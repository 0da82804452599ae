package allocator

// Fitter runs Fit and NodeScore with reusable buffers, so that the
// extender's filter, which fits a pod on thousands of nodes, allocates
// nothing per feasible node. The Assignment a Fitter returns is valid only
// until its next call; Bind uses the package-level Fit, whose result is its
// own. A Fitter is not safe for concurrent use: use one per goroutine.
type Fitter struct {
	a          Assignment
	containers []ContainerAssignment
	order      []int
	devs       []int
	charges    []Charge
	extra      []Units
	app, ini   []Units
	views      [4]NodeView
}

// reset prepares the buffers for a node of n devices.
func (f *Fitter) reset(n int) {
	f.devs = f.devs[:0]
	if cap(f.extra) < n {
		f.extra = make([]Units, n)
		f.app = make([]Units, n)
		f.ini = make([]Units, n)
	}
	f.extra = f.extra[:n]
	clear(f.extra)
}

// chargesInto computes the per-device charge of container assignments into
// the Fitter's buffer.
func (f *Fitter) chargesInto(n int, cs []ContainerAssignment) []Charge {
	if cap(f.app) < n {
		f.app = make([]Units, n)
		f.ini = make([]Units, n)
	}
	app, ini := f.app[:n], f.ini[:n]
	clear(app)
	clear(ini)
	for _, c := range cs {
		for _, d := range c.Devices {
			if c.Init {
				ini[d] = ini[d].Max(c.PerGPU)
			} else {
				app[d] = app[d].Add(c.PerGPU)
			}
		}
	}
	out := f.charges[:0]
	for i := 0; i < n; i++ {
		u := app[i].Max(ini[i])
		if !u.IsZero() {
			out = append(out, Charge{Device: i, Units: u})
		}
	}
	f.charges = out[:0]
	return out[:len(out):len(out)]
}
