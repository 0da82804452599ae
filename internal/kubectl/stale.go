package kubectl

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/api"
)

// StalePod is a pod whose placement the device plugin has not confirmed:
// kubelet has not allocated it yet, or its allocation record disagrees with
// the placement.
type StalePod struct {
	// Pod is "namespace/name".
	Pod  string `json:"pod"`
	Node string `json:"node"`
	// Reason says what is stale.
	Reason string `json:"reason"`
	// AssignedAt is when the extender placed the pod (zero when unknown).
	AssignedAt time.Time `json:"assignedAt,omitzero"`
	// Age is how long ago that was, at the report's time.
	Age string `json:"age,omitempty"`
}

// Stale reasons.
const (
	reasonNotAllocated    = "not allocated yet (no " + api.AnnotationAllocated + " record)"
	reasonAllocationParse = "allocation record unreadable"
	reasonDisagrees       = "allocation disagrees with the placement"
)

// stalePods returns the stale placements of the live pods (on node, when
// set), ordered by pod. Placements the extender does not charge are
// internal/inspect's problems.
func stalePods(pods []corev1.Pod, node string, now time.Time) []StalePod {
	var stale []StalePod
	for i := range pods {
		p := &pods[i]
		raw, ok := p.Annotations[api.AnnotationPlacement]
		if !ok || api.IsTerminal(p) {
			continue
		}
		pl, err := api.ParsePlacement(raw)
		if err != nil {
			continue // internal/inspect reports it
		}
		if node != "" && pl.Node != node {
			continue
		}
		key := p.Namespace + "/" + p.Name
		sp := StalePod{Pod: key, Node: pl.Node, AssignedAt: pl.AssignedAt}
		if !pl.AssignedAt.IsZero() && !now.IsZero() {
			sp.Age = age(now.Sub(pl.AssignedAt))
		}
		rawAlloc, ok := p.Annotations[api.AnnotationAllocated]
		if !ok {
			sp.Reason = reasonNotAllocated
			stale = append(stale, sp)
			continue
		}
		a, err := api.ParseAllocation(rawAlloc)
		switch {
		case err != nil:
			sp.Reason = fmt.Sprintf("%s: %v", reasonAllocationParse, err)
		case !a.Equal(pl):
			sp.Reason = reasonDisagrees + ": " + difference(pl, a)
		default:
			continue
		}
		stale = append(stale, sp)
	}
	slices.SortFunc(stale, func(a, b StalePod) int { return cmp.Compare(a.Pod, b.Pod) })
	return stale
}

// difference names the first thing that differs between a placement and
// an allocation record.
func difference(pl, a *api.Placement) string {
	if pl.Node != a.Node {
		return fmt.Sprintf("placed on node %s, allocated on %s", pl.Node, a.Node)
	}
	for _, c := range pl.Containers {
		ac := a.Container(c.Name, c.Init)
		if ac == nil {
			return fmt.Sprintf("container %q has no allocation", c.Name)
		}
		if !slices.Equal(c.Devices, ac.Devices) {
			return fmt.Sprintf("container %q placed on %s, allocated %s", c.Name, devices(c.Devices), devices(ac.Devices))
		}
	}
	for _, c := range a.Containers {
		if pl.Container(c.Name, c.Init) == nil {
			return fmt.Sprintf("container %q is allocated but not placed", c.Name)
		}
	}
	return "containers in another order"
}

func devices(ds []api.DeviceShare) string {
	if len(ds) == 0 {
		return "no GPU"
	}
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("gpu %d (%ds/%dc)", d.Index, d.Slices, d.Core)
	}
	return s
}

// age formats a duration the way kubectl's AGE column does, coarsely.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
