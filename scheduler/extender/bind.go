package extender

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// Bind chooses the GPUs on the node kube-scheduler picked, assumes them, and
// binds the pod with the placement annotation in one Binding. A failure is
// counted and recorded as an event on the pod (rate-limited).
func (e *Extender) Bind(ctx context.Context, args *extenderv1.ExtenderBindingArgs) error {
	result, err := e.bind(ctx, args)
	e.metrics.Bind(result)
	if err != nil && args.PodUID != "" && args.PodName != "" && args.PodNamespace != "" {
		e.notify.warn(podRef(args.PodNamespace, args.PodName, args.PodUID), EventFailedBind, EventActionBind, err.Error())
	}
	return err
}

func (e *Extender) bind(ctx context.Context, args *extenderv1.ExtenderBindingArgs) (string, error) {
	logger := klog.FromContext(ctx)
	if err := validateBindingArgs(args); err != nil {
		return metrics.BindRefused, err
	}
	key := args.PodNamespace + "/" + args.PodName
	req, pol, err := e.requestFor(args)
	if err != nil {
		return metrics.BindRefused, err
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: args.PodName, Namespace: args.PodNamespace, UID: args.PodUID},
		Target:     v1.ObjectReference{Kind: "Node", Name: args.Node},
	}
	var gen uint64
	if req.HasGPU() {
		placement, g, err := e.assume(args, key, req, pol)
		if err != nil {
			return metrics.BindRefused, fmt.Errorf("bind %s to %s: %w", key, args.Node, err)
		}
		gen = g
		value, err := placement.Encode()
		if err != nil {
			e.cache.Forget(args.PodUID, gen)
			return metrics.BindFailed, err
		}
		binding.Annotations = map[string]string{api.AnnotationPlacement: value}
	}
	if err := e.client.CoreV1().Pods(args.PodNamespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		if gen != 0 {
			if e.bindMayHaveLanded(ctx, args, err) {
				// Freeing the shares now could hand them to another pod
				// while this one runs there: keep the assumption until the
				// informer confirms it or the reservation expires.
				logger.Info("Binding failed ambiguously; keeping the GPU shares reserved", "pod", klog.KRef(args.PodNamespace, args.PodName), "node", args.Node, "err", err)
				e.metrics.AmbiguousBind()
			} else {
				e.cache.Forget(args.PodUID, gen)
			}
		}
		return metrics.BindFailed, fmt.Errorf("bind %s to %s: %w", key, args.Node, err)
	}
	e.pending.remove(args.PodUID)
	logger.V(2).Info("Bound pod", "pod", klog.KRef(args.PodNamespace, args.PodName), "node", args.Node)
	return metrics.BindBound, nil
}

// assumeAttempts bounds how often bind chooses again when a concurrent bind
// took the shares it chose.
const assumeAttempts = 3

// assume chooses the pod's GPUs on a copy of the node and assumes them in
// the cache, choosing again when another bind took them meanwhile.
func (e *Extender) assume(args *extenderv1.ExtenderBindingArgs, key string, req *allocator.PodRequest, pol allocator.Policy) (*api.Placement, uint64, error) {
	for attempt := 1; ; attempt++ {
		n, err := e.cache.Node(args.Node)
		if err != nil {
			return nil, 0, err
		}
		start := e.clock.Now()
		a, st := allocator.Fit(n, req, pol)
		e.metrics.ObserveDecision(pol.Name(), "bind", e.clock.Since(start))
		if !st.IsSuccess() {
			return nil, 0, fmt.Errorf("pod no longer fits node %s: %s", args.Node, st.Message())
		}
		now := e.clock.Now()
		placement := a.Placement(n, now)
		gen, err := e.cache.Assume(args.PodUID, key, placement, req, now)
		if errors.Is(err, cache.ErrConflict) {
			e.metrics.BindConflict()
			if attempt < assumeAttempts {
				continue
			}
		}
		return placement, gen, err
	}
}

// validateBindingArgs checks that a bind names the pod fully and a node.
func validateBindingArgs(args *extenderv1.ExtenderBindingArgs) error {
	if args.PodName == "" || args.PodNamespace == "" || args.PodUID == "" || args.Node == "" {
		return errors.New("binding args need podName, podNamespace, podUID and node")
	}
	return nil
}

// bindMayHaveLanded tells whether a failed Binding may still have bound the
// pod (a timeout or a server error after the write). The API server's
// definite refusals did not bind; otherwise one read of the pod decides,
// and when that read fails too the answer is "maybe". This is the only API
// call besides the Binding, and only on a failed bind.
func (e *Extender) bindMayHaveLanded(ctx context.Context, args *extenderv1.ExtenderBindingArgs, err error) bool {
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err) ||
		apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsUnauthorized(err) {
		return false
	}
	pod, gerr := e.client.CoreV1().Pods(args.PodNamespace).Get(ctx, args.PodName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(gerr):
		return false
	case gerr != nil:
		return true
	}
	return pod.UID == args.PodUID && pod.Spec.NodeName == args.Node
}

// requestFor returns the request of the pod to bind. Bind follows only
// this process's own filter: the pod UID must have been filtered recently
// (within PendingLimits) under the same name, with the node among those
// filter kept, and the pod must not be bound yet. Anything else is refused,
// so a caller cannot bind a pod to a node kube-scheduler's filters (which
// run before the extender's) or the extender did not pass.
func (e *Extender) requestFor(args *extenderv1.ExtenderBindingArgs) (*allocator.PodRequest, allocator.Policy, error) {
	key := args.PodNamespace + "/" + args.PodName
	if e.cache.HasPod(args.PodUID) {
		return nil, nil, fmt.Errorf("pod %s (uid %s) is already bound or being bound", key, args.PodUID)
	}
	pp, ok := e.pending.get(args.PodUID)
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("pod %s (uid %s) was not filtered by this extender recently; bind only follows its own filter", key, args.PodUID)
	case pp.namespace != args.PodNamespace || pp.name != args.PodName:
		return nil, nil, fmt.Errorf("pod uid %s was filtered as %s/%s, not %s", args.PodUID, pp.namespace, pp.name, key)
	case !pp.feasible(args.Node):
		return nil, nil, fmt.Errorf("node %s was not feasible for pod %s when this extender filtered it", args.Node, key)
	}
	if e.pods != nil {
		uid, node, found := e.pods.BoundPod(args.PodNamespace, args.PodName)
		switch {
		case found && uid != args.PodUID:
			return nil, nil, fmt.Errorf("pod %s has uid %s, not the uid %s that was scheduled", key, uid, args.PodUID)
		case found && node != "":
			return nil, nil, fmt.Errorf("pod %s is already bound to %s", key, node)
		}
	}
	return pp.req, pp.policy, nil
}
