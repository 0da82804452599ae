package api

// PodCharge computes what one pod holds on each of its node's GPUs, the way
// Kubernetes computes a pod's effective request (KEP-753, sidecar
// containers), applied per GPU and per resource:
//
//  1. App containers run together: their shares add up.
//  2. Sidecars (restartable init containers) start in init order and keep
//     running for the pod's whole life: their shares add to the app
//     containers' sum, and each one also adds to every init container that
//     starts after it.
//  3. Regular init containers run one at a time, before the app containers,
//     beside the sidecars started before them: each needs its own share plus
//     those sidecars' shares.
//
// The charge on a GPU is the componentwise maximum of (1)+(2) and of every
// init-time peak of (2)+(3). Without sidecars this is the familiar "app sum,
// init max".
//
// Containers must be added in pod spec order (init containers in the order
// they start; app containers may come at any point). A PodCharge reuses its
// buffers across Reset calls, so hot paths allocate nothing.
type PodCharge struct {
	app, side, peak []Units
}

// Reset prepares the charge for a node of n GPUs (positions 0..n-1).
func (c *PodCharge) Reset(n int) {
	if cap(c.app) < n {
		c.app, c.side, c.peak = make([]Units, n), make([]Units, n), make([]Units, n)
	}
	c.app, c.side, c.peak = c.app[:n], c.side[:n], c.peak[:n]
	clear(c.app)
	clear(c.side)
	clear(c.peak)
}

// Add records that a container takes u on GPU position gpu. init marks an
// init container, sidecar a restartable one (sidecar implies init).
func (c *PodCharge) Add(gpu int, init, sidecar bool, u Units) {
	switch {
	case sidecar:
		c.side[gpu] = c.side[gpu].Add(u)
		c.peak[gpu] = c.peak[gpu].Max(c.side[gpu])
	case init:
		c.peak[gpu] = c.peak[gpu].Max(c.side[gpu].Add(u))
	default:
		c.app[gpu] = c.app[gpu].Add(u)
	}
}

// Len returns the number of GPU positions.
func (c *PodCharge) Len() int { return len(c.app) }

// On returns the pod's charge on GPU position gpu.
func (c *PodCharge) On(gpu int) Units {
	return c.app[gpu].Add(c.side[gpu]).Max(c.peak[gpu])
}
