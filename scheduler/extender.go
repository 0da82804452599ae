package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// Extender answers kube-scheduler's extender calls. It is safe for
// concurrent use.
type Extender struct {
	cache    *Cache
	policies *Policies
	client   kubernetes.Interface
	pods     corelisters.PodLister
	clock    clock.PassiveClock

	// filtered remembers the request of each pod filtered recently, by UID,
	// so bind uses the pod that was filtered (not a namesake) without an
	// API call. It has its own internal lock.
	filtered *gocache.Cache
	// memo holds the node scores computed in the last filter.
	memo atomic.Pointer[scoreMemo]
	// observed dedupes the policy's online learning by pod UID.
	observedMu sync.Mutex
	observed   map[types.UID]struct{}
}

// filteredPod is what filter learned about a pod.
type filteredPod struct {
	namespace, name string
	req             *allocator.PodRequest
	policy          allocator.Policy
}

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

// nodeResult is the outcome of fitting a pod on one node.
type nodeResult struct {
	code  allocator.Code
	score float64
	msg   string
}

// fitNode fits the request on a node entry (nil when unknown). The caller
// holds the cache's read lock.
func (e *Extender) fitNode(f *allocator.Fitter, pol allocator.Policy, ne *nodeEntry, req *allocator.PodRequest) nodeResult {
	if ne == nil {
		return nodeResult{code: allocator.UnschedulableAndUnresolvable, msg: "node has no gpuslice GPU inventory"}
	}
	if ne.alloc == nil {
		return nodeResult{code: allocator.UnschedulableAndUnresolvable, msg: ne.err}
	}
	a, st := f.Fit(ne.alloc, req, pol)
	if !st.IsSuccess() {
		return nodeResult{code: st.Code, msg: st.Message()}
	}
	return nodeResult{code: allocator.Success, score: f.NodeScore(pol, ne.alloc, a)}
}

// NewExtender wires an extender. pods may be nil (bind then relies on the
// pods seen in filter only).
func NewExtender(cache *Cache, policies *Policies, client kubernetes.Interface, pods corelisters.PodLister, clk clock.PassiveClock) *Extender {
	return &Extender{
		cache:    cache,
		policies: policies,
		client:   client,
		pods:     pods,
		clock:    clk,
		filtered: gocache.New(10*time.Minute, 5*time.Minute),
		observed: map[types.UID]struct{}{},
	}
}

// Filter keeps the nodes on which the pod's GPU request fits.
func (e *Extender) Filter(ctx context.Context, args *extenderv1.ExtenderArgs) *extenderv1.ExtenderFilterResult {
	logger := klog.FromContext(ctx)
	pod := args.Pod
	names := nodeNames(args)
	res := &extenderv1.ExtenderFilterResult{
		FailedNodes:                extenderv1.FailedNodesMap{},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{},
	}
	req, err := api.ParsePodRequest(pod)
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
	e.cache.Read(func(nodes map[string]*nodeEntry, _ map[types.UID]*podEntry) {
		parallelize(len(names), func(lo, hi int) {
			f := new(allocator.Fitter)
			for i := lo; i < hi; i++ {
				results[i] = e.fitNode(f, pol, nodes[names[i]], req)
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

// Prioritize scores the nodes 0..MaxExtenderPriority with the policy. The
// best node(s) get the maximum, the rest are scaled below it.
func (e *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (extenderv1.HostPriorityList, error) {
	pod := args.Pod
	names := nodeNames(args)
	out := make(extenderv1.HostPriorityList, len(names))
	req, err := api.ParsePodRequest(pod)
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
		e.cache.Read(func(nodes map[string]*nodeEntry, _ map[types.UID]*podEntry) {
			f := new(allocator.Fitter)
			for i, n := range names {
				if ok[i] {
					continue
				}
				if r := e.fitNode(f, pol, nodes[n], req); r.code == allocator.Success {
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

// Bind chooses the GPUs on the node kube-scheduler picked, assumes them, and
// binds the pod with the placement annotation in one Binding.
func (e *Extender) Bind(ctx context.Context, args *extenderv1.ExtenderBindingArgs) error {
	logger := klog.FromContext(ctx)
	if args.PodName == "" || args.PodNamespace == "" || args.PodUID == "" || args.Node == "" {
		return errors.New("binding args need podName, podNamespace, podUID and node")
	}
	key := args.PodNamespace + "/" + args.PodName
	req, pol, err := e.requestFor(args)
	if err != nil {
		return err
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: args.PodName, Namespace: args.PodNamespace, UID: args.PodUID},
		Target:     v1.ObjectReference{Kind: "Node", Name: args.Node},
	}
	var gen uint64
	if req.HasGPU() {
		placement, g, err := e.cache.Assume(args.PodUID, key, args.Node, e.clock.Now(), func(n *allocator.Node) (*allocator.Assignment, *allocator.Status) {
			return allocator.Fit(n, req, pol)
		})
		if err != nil {
			return fmt.Errorf("bind %s to %s: %w", key, args.Node, err)
		}
		gen = g
		value, err := placement.Encode()
		if err != nil {
			e.cache.Forget(args.PodUID, gen)
			return err
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
			} else {
				e.cache.Forget(args.PodUID, gen)
			}
		}
		return fmt.Errorf("bind %s to %s: %w", key, args.Node, err)
	}
	e.filtered.Delete(string(args.PodUID))
	logger.V(2).Info("Bound pod", "pod", klog.KRef(args.PodNamespace, args.PodName), "node", args.Node)
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

// requestFor returns the request of the pod to bind, checking that it is the
// pod that was filtered and that it is not bound yet.
func (e *Extender) requestFor(args *extenderv1.ExtenderBindingArgs) (*allocator.PodRequest, allocator.Policy, error) {
	key := args.PodNamespace + "/" + args.PodName
	if e.cache.HasPod(args.PodUID) {
		return nil, nil, fmt.Errorf("pod %s (uid %s) is already bound or being bound", key, args.PodUID)
	}
	var req *allocator.PodRequest
	var pol allocator.Policy
	if v, ok := e.filtered.Get(string(args.PodUID)); ok {
		fp := v.(*filteredPod)
		if fp.namespace != args.PodNamespace || fp.name != args.PodName {
			return nil, nil, fmt.Errorf("pod uid %s was filtered as %s/%s, not %s", args.PodUID, fp.namespace, fp.name, key)
		}
		req, pol = fp.req, fp.policy
	}
	if e.pods != nil {
		pod, err := e.pods.Pods(args.PodNamespace).Get(args.PodName)
		switch {
		case err == nil && pod.UID != args.PodUID:
			return nil, nil, fmt.Errorf("pod %s has uid %s, not the uid %s that was scheduled", key, pod.UID, args.PodUID)
		case err == nil && pod.Spec.NodeName != "":
			return nil, nil, fmt.Errorf("pod %s is already bound to %s", key, pod.Spec.NodeName)
		case err == nil && req == nil:
			r, err := api.ParsePodRequest(pod)
			if err != nil {
				return nil, nil, err
			}
			req, pol = r, e.policies.For(pod.Spec.SchedulerName)
		}
	}
	if req == nil {
		return nil, nil, fmt.Errorf("pod %s (uid %s) was not filtered by this extender and is not in its cache", key, args.PodUID)
	}
	return req, pol, nil
}

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
	req, err := api.ParsePodRequest(args.Pod)
	if err != nil {
		return nil, err
	}
	if !req.HasGPU() {
		res.NodeNameToMetaVictims = victims
		return res, nil
	}
	pol := e.policies.For(args.Pod.Spec.SchedulerName)
	e.cache.Read(func(nodes map[string]*nodeEntry, pods map[types.UID]*podEntry) {
		for name, mv := range victims {
			ne := nodes[name]
			if ne == nil || ne.alloc == nil || mv == nil {
				continue
			}
			n := ne.alloc.Clone()
			for _, v := range mv.Pods {
				if p, ok := pods[types.UID(v.UID)]; ok && p.node == name && p.charges != nil {
					n.Apply(p.charges, -1)
				}
			}
			if _, st := allocator.Fit(n, req, pol); st.IsSuccess() {
				res.NodeNameToMetaVictims[name] = mv
			}
		}
	})
	klog.FromContext(ctx).V(4).Info("Preemption candidates", "pod", klog.KObj(args.Pod), "kept", len(res.NodeNameToMetaVictims), "proposed", len(victims))
	return res, nil
}
