package extender

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
)

// Preempt keeps the nodes on which evicting the proposed victims makes room
// for the pod's GPU request, with the same victims.
func (e *Extender) Preempt(ctx context.Context, args *extenderv1.ExtenderPreemptionArgs) (*extenderv1.ExtenderPreemptionResult, error) {
	res := &extenderv1.ExtenderPreemptionResult{NodeNameToMetaVictims: map[string]*extenderv1.MetaVictims{}}
	if args.Pod == nil {
		return nil, errors.New("preemption args have no pod")
	}
	victims := args.NodeNameToMetaVictims
	if victims == nil {
		victims = make(map[string]*extenderv1.MetaVictims, len(args.NodeNameToVictims))
		for n, v := range args.NodeNameToVictims {
			mv := &extenderv1.MetaVictims{NumPDBViolations: v.NumPDBViolations}
			for _, p := range v.Pods {
				mv.Pods = append(mv.Pods, &extenderv1.MetaPod{UID: string(p.UID)})
			}
			victims[n] = mv
		}
	}
	req, err := e.podRequest(args.Pod)
	if err != nil {
		return nil, err
	}
	if !req.HasGPU() {
		res.NodeNameToMetaVictims = victims
		return res, nil
	}
	pol := e.policies.For(args.Pod.Spec.SchedulerName)
	for name, mv := range victims {
		if mv == nil {
			continue
		}
		uids := make([]types.UID, len(mv.Pods))
		for i, v := range mv.Pods {
			uids[i] = types.UID(v.UID)
		}
		n, err := e.cache.FreeAfterEvicting(name, uids)
		if err != nil {
			continue
		}
		if _, st := allocator.Fit(n, req, pol); st.IsSuccess() {
			res.NodeNameToMetaVictims[name] = mv
		}
	}
	klog.FromContext(ctx).V(4).Info("Preemption candidates", "pod", klog.KObj(args.Pod), "kept", len(res.NodeNameToMetaVictims), "proposed", len(victims))
	return res, nil
}
