package kubectl

import "math"

// Summary is the cluster (or node) summary line.
type Summary struct {
	Nodes     int `json:"nodes"`
	GPUs      int `json:"gpus"`
	Unhealthy int `json:"unhealthy"`
	// Slices and Core add up every healthy GPU.
	Slices Amount `json:"slices"`
	Core   Amount `json:"core"`
	// AllocatedPercent is the share of the healthy GPUs' slices in use.
	AllocatedPercent float64 `json:"allocatedPercent"`
	// Fragmentation counts the healthy GPUs by state.
	Fragmentation Fragmentation `json:"fragmentation"`
	// Pending lists the gpuslice pods not bound yet (namespace/name).
	Pending []string `json:"pending,omitempty"`
}

// Fragmentation says how the free room is spread: GPUs wholly free, partly
// free, full, and how many of the free slices lie on partly used GPUs
// (room a pod wanting a whole GPU cannot use).
type Fragmentation struct {
	WhollyFree int `json:"whollyFree"`
	PartlyFree int `json:"partlyFree"`
	Full       int `json:"full"`
	// StrandedSlices are the free slices on partly free GPUs.
	StrandedSlices int64 `json:"strandedSlices"`
	// StrandedPercent is StrandedSlices out of all free slices.
	StrandedPercent float64 `json:"strandedPercent"`
}

func summarize(nodes []NodeReport, pending []string) Summary {
	s := Summary{Nodes: len(nodes), Pending: pending}
	for _, n := range nodes {
		for _, g := range n.GPUs {
			s.GPUs++
			if g.State == StateUnhealthy {
				s.Unhealthy++
				continue
			}
			s.Slices = add(s.Slices, g.Slices)
			s.Core = add(s.Core, g.Core)
			switch g.State {
			case StateFree:
				s.Fragmentation.WhollyFree++
			case StatePartial:
				s.Fragmentation.PartlyFree++
				s.Fragmentation.StrandedSlices += max(g.Slices.Free, 0)
			default:
				s.Fragmentation.Full++
			}
		}
	}
	s.AllocatedPercent = percent(s.Slices.Used, s.Slices.Total)
	s.Fragmentation.StrandedPercent = percent(s.Fragmentation.StrandedSlices, max(s.Slices.Free, 0))
	return s
}

func add(a, b Amount) Amount {
	return Amount{Used: a.Used + b.Used, Free: a.Free + max(b.Free, 0), Total: a.Total + b.Total}
}

// percent returns 100*n/d rounded to one decimal, 0 when d is 0.
func percent(n, d int64) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)*1000/float64(d)) / 10
}
