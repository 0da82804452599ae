package extender

import (
	"context"
	"fmt"

	gocache "github.com/patrickmn/go-cache"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Filter keeps the nodes on which the pod's GPU request fits.
func (e *Extender) Filter(ctx context.Context, args *extenderv1.ExtenderArgs) *extenderv1.ExtenderFilterResult {
	logger := klog.FromContext(ctx)
	pod := args.Pod
	names := nodeNames(args)
	res := &extenderv1.ExtenderFilterResult{
		FailedNodes:                extenderv1.FailedNodesMap{},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{},
	}
	req, err := PodRequest(pod)
	if err != nil {
		msg := fmt.Sprintf("%s: %v", allocator.ReasonInvalidRequest, err)
		for _, n := range names {
			res.FailedAndUnresolvableNodes[n] = msg
		}
		setNodes(args, res, nil)
		logger.V(2).Info("Rejected an invalid gpuslice request", "pod", klog.KObj(pod), "err", err)
		return res
	}
	if !req.HasGPU() {
		setNodes(args, res, names)
		return res
	}
	pol := e.policies.For(pod.Spec.SchedulerName)
	e.filtered.Set(string(pod.UID), &filteredPod{namespace: pod.Namespace, name: pod.Name, req: req, policy: pol}, gocache.DefaultExpiration)
	e.observe(pol, pod.UID, req)
	results := make([]nodeResult, len(names))
	e.cache.Read(func(v cache.View) {
		parallelize(len(names), func(lo, hi int) {
			f := new(allocator.Fitter)
			for i := lo; i < hi; i++ {
				results[i] = fitNode(f, pol, v, names[i], req)
			}
		})
	})
	fit := make([]string, 0, len(names))
	scores := make([]float64, 0, len(names))
	for i, r := range results {
		switch r.code {
		case allocator.Success:
			fit = append(fit, names[i])
			scores = append(scores, r.score)
		case allocator.Unschedulable:
			res.FailedNodes[names[i]] = r.msg
		default:
			res.FailedAndUnresolvableNodes[names[i]] = r.msg
		}
	}
	e.memo.Store(&scoreMemo{uid: pod.UID, nodes: fit, scores: scores})
	setNodes(args, res, fit)
	logger.V(4).Info("Filtered nodes", "pod", klog.KObj(pod), "feasible", len(fit), "failed", len(res.FailedNodes), "unresolvable", len(res.FailedAndUnresolvableNodes))
	return res
}

func (e *Extender) observe(pol allocator.Policy, uid types.UID, req *allocator.PodRequest) {
	obs, ok := pol.(allocator.Observer)
	if !ok {
		return
	}
	e.observedMu.Lock()
	_, seen := e.observed[uid]
	if !seen {
		if len(e.observed) > 100000 {
			clear(e.observed)
		}
		e.observed[uid] = struct{}{}
	}
	e.observedMu.Unlock()
	if !seen {
		obs.Observe(req)
	}
}

// nodeNames returns the candidate node names of the call, from NodeNames
// (nodeCacheCapable) or from the full node list.
func nodeNames(args *extenderv1.ExtenderArgs) []string {
	if args.NodeNames != nil {
		return *args.NodeNames
	}
	if args.Nodes == nil {
		return nil
	}
	out := make([]string, len(args.Nodes.Items))
	for i := range args.Nodes.Items {
		out[i] = args.Nodes.Items[i].Name
	}
	return out
}

// setNodes answers in the form the call used: node names, or node objects.
func setNodes(args *extenderv1.ExtenderArgs, res *extenderv1.ExtenderFilterResult, fit []string) {
	if fit == nil {
		fit = []string{}
	}
	if args.NodeNames != nil || args.Nodes == nil {
		res.NodeNames = &fit
		return
	}
	keep := make(map[string]bool, len(fit))
	for _, n := range fit {
		keep[n] = true
	}
	list := &v1.NodeList{Items: make([]v1.Node, 0, len(fit))}
	for i := range args.Nodes.Items {
		if keep[args.Nodes.Items[i].Name] {
			list.Items = append(list.Items, args.Nodes.Items[i])
		}
	}
	res.Nodes = list
}
