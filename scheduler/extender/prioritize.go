package extender

import (
	"context"
	"math"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
)

// Prioritize scores the nodes 0..MaxExtenderPriority with the policy. The
// best node(s) get the maximum, the rest are scaled below it.
//
// The list names only the nodes whose score is above zero: kube-scheduler
// (prioritizeNodes in pkg/scheduler/schedule_one.go) adds each listed
// node's score times the weight to that node's total and nothing to an
// unlisted one, so leaving out a zero changes no decision, and on a large
// cluster, where most nodes tie at the bottom, it saves encoding and
// decoding thousands of entries on every scheduling cycle.
func (e *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (extenderv1.HostPriorityList, error) {
	pod := args.Pod
	names := nodeNames(args)
	req, err := e.podRequest(pod)
	if err != nil || !req.HasGPU() {
		return extenderv1.HostPriorityList{}, nil
	}
	pol := e.policies.For(pod.Spec.SchedulerName)
	raw := make([]float64, len(names))
	ok := make([]bool, len(names))
	missing := true
	if m, found := e.pending.get(pod.UID); found && m.scores != nil {
		aligned, byName := m.lookup(names)
		missing = false
		for i, n := range names {
			if aligned != nil {
				raw[i], ok[i] = aligned[i], true
			} else {
				raw[i], ok[i] = byName[n]
			}
			missing = missing || !ok[i]
		}
	}
	if missing {
		var todo []string
		var at []int
		for i, n := range names {
			if !ok[i] {
				todo, at = append(todo, n), append(at, i)
			}
		}
		for j, r := range e.cache.FitNodes(todo, req, pol) {
			if r.Code == allocator.Success {
				raw[at[j]], ok[at[j]] = r.Score, true
			}
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range raw {
		if ok[i] {
			lo, hi = min(lo, raw[i]), max(hi, raw[i])
		}
	}
	out := extenderv1.HostPriorityList{}
	for i, n := range names {
		if score := normalize(raw[i], ok[i], lo, hi); score > 0 {
			out = append(out, extenderv1.HostPriority{Host: n, Score: score})
		}
	}
	return out, nil
}

// normalize maps a raw score onto 0..MaxExtenderPriority: the best node(s)
// get the maximum so that kube-scheduler's own spreading scores cannot
// outvote the policy's first choice; the others are scaled below it.
func normalize(s float64, ok bool, lo, hi float64) int64 {
	const eps = 1e-9
	switch {
	case !ok:
		return extenderv1.MinExtenderPriority
	case s >= hi-eps:
		return extenderv1.MaxExtenderPriority
	case hi-lo < eps:
		return extenderv1.MaxExtenderPriority
	}
	span := float64(extenderv1.MaxExtenderPriority - 1)
	return int64(math.Floor(span * (s - lo) / (hi - lo)))
}
