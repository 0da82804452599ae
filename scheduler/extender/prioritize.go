package extender

import (
	"context"
	"math"

	"k8s.io/apimachinery/pkg/types"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// scoreMemo carries filter's scores to prioritize for the same pod:
// scores[i] is the raw score of nodes[i], the nodes filter kept.
type scoreMemo struct {
	uid    types.UID
	nodes  []string
	scores []float64
}

// lookup returns the memo's scores for names when the memo covers exactly
// those nodes in that order (what kube-scheduler sends after filter), else a
// map from node to score.
func (m *scoreMemo) lookup(names []string) ([]float64, map[string]float64) {
	if len(names) == len(m.nodes) {
		same := true
		for i := range names {
			if names[i] != m.nodes[i] {
				same = false
				break
			}
		}
		if same {
			return m.scores, nil
		}
	}
	byName := make(map[string]float64, len(m.nodes))
	for i, n := range m.nodes {
		byName[n] = m.scores[i]
	}
	return nil, byName
}

// Prioritize scores the nodes 0..MaxExtenderPriority with the policy. The
// best node(s) get the maximum, the rest are scaled below it.
func (e *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (extenderv1.HostPriorityList, error) {
	pod := args.Pod
	names := nodeNames(args)
	out := make(extenderv1.HostPriorityList, len(names))
	req, err := PodRequest(pod)
	if err != nil || !req.HasGPU() {
		for i, n := range names {
			out[i] = extenderv1.HostPriority{Host: n}
		}
		return out, nil
	}
	pol := e.policies.For(pod.Spec.SchedulerName)
	raw := make([]float64, len(names))
	ok := make([]bool, len(names))
	missing := true
	if m := e.memo.Load(); m != nil && m.uid == pod.UID {
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
		e.cache.Read(func(v cache.View) {
			f := new(allocator.Fitter)
			for i, n := range names {
				if ok[i] {
					continue
				}
				if r := fitNode(f, pol, v, n, req); r.code == allocator.Success {
					raw[i], ok[i] = r.score, true
				}
			}
		})
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range raw {
		if ok[i] {
			lo, hi = min(lo, raw[i]), max(hi, raw[i])
		}
	}
	for i, n := range names {
		out[i] = extenderv1.HostPriority{Host: n, Score: normalize(raw[i], ok[i], lo, hi)}
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
