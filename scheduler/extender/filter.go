package extender

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
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
	req, err := e.podRequest(pod)
	if err != nil {
		msg := fmt.Sprintf("%s: %v", allocator.ReasonInvalidRequest, err)
		for _, n := range names {
			res.FailedAndUnresolvableNodes[n] = msg
		}
		setNodes(args, res, nil)
		// Logged (and recorded as an event) once per pod and interval,
		// then only at a higher verbosity: kube-scheduler retries the pod
		// on every cycle.
		if e.notify.warn(pod, EventInvalidRequest, EventActionSchedule, msg) {
			logger.Info("Rejected an invalid gpuslice request; the pod cannot be placed until it is fixed", "pod", klog.KObj(pod), "err", err)
		} else {
			logger.V(4).Info("Rejected an invalid gpuslice request again", "pod", klog.KObj(pod), "err", err)
		}
		e.metrics.Unplaceable(EventInvalidRequest)
		return res
	}
	pp := &pendingPod{uid: pod.UID, namespace: pod.Namespace, name: pod.Name, req: req}
	if !req.HasGPU() {
		// kube-scheduler's own filters kept these nodes; remember them so
		// that bind accepts only them.
		pp.nodes = names
		e.pending.put(pp)
		setNodes(args, res, names)
		return res
	}
	pp.policy = e.policies.For(pod.Spec.SchedulerName)
	pp.observed = e.observe(pp.policy, pod.UID, req)
	start := e.clock.Now()
	results := e.cache.FitNodes(names, req, pp.policy)
	e.metrics.ObserveDecision(pp.policy.Name(), "filter", e.clock.Since(start))
	fit := make([]string, 0, len(names))
	scores := make([]float64, 0, len(names))
	for i, r := range results {
		switch r.Code {
		case allocator.Success:
			fit = append(fit, names[i])
			scores = append(scores, r.Score)
		case allocator.Unschedulable:
			res.FailedNodes[names[i]] = r.Message()
		default:
			res.FailedAndUnresolvableNodes[names[i]] = r.Message()
		}
	}
	fit, scores = shortlist(fit, scores, e.shortlist)
	pp.nodes, pp.scores = fit, scores
	e.pending.put(pp)
	if len(fit) == 0 && len(names) > 0 {
		reason, note := unplaceable(results)
		e.metrics.Unplaceable(reason)
		if e.notify.warn(pod, reason, EventActionSchedule, note) {
			logger.V(2).Info("No node can place the pod's GPU request", "pod", klog.KObj(pod), "reason", reason, "note", note)
		}
	}
	setNodes(args, res, fit)
	logger.V(4).Info("Filtered nodes", "pod", klog.KObj(pod), "feasible", len(fit), "failed", len(res.FailedNodes), "unresolvable", len(res.FailedAndUnresolvableNodes))
	return res
}

// observe lets an online-learning policy learn the pod's request, once
// per pod (while its filter is remembered). It reports whether the pod
// counts as observed.
func (e *Extender) observe(pol allocator.Policy, uid types.UID, req *allocator.PodRequest) bool {
	obs, ok := pol.(allocator.Observer)
	if !ok {
		return false
	}
	if prev, ok := e.pending.get(uid); ok && prev.observed {
		return true
	}
	obs.Observe(req)
	return true
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
