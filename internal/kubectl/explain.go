package kubectl

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Explanation says why a gpuslice pod is (not) placed. Its JSON form is
// explain's -o json output.
type Explanation struct {
	// Pod is "namespace/name".
	Pod string `json:"pod"`
	// Node is the node the pod is bound to, if any.
	Node string `json:"node,omitempty"`
	// Placement is the pod's placement, when it has one.
	Placement *api.Placement `json:"placement,omitempty"`
	// Stale says why that placement is stale, if it is.
	Stale string `json:"stale,omitempty"`
	// Request is the pod's GPU request, one line per container asking.
	Request []string `json:"request,omitempty"`
	// Models are the GPU models the pod may use (empty: any).
	Models []string `json:"models,omitempty"`
	// RuntimeClass is the pod's runtime class, Sandbox the VM-sandbox
	// isolation mode it maps to (ExplainOptions.RuntimeClassModes; empty:
	// the pod runs containers, on GPUs of shared modes only).
	RuntimeClass string            `json:"runtimeClass,omitempty"`
	Sandbox      api.IsolationMode `json:"sandbox,omitempty"`
	// Invalid says why the pod's gpuslice request cannot be parsed.
	Invalid string `json:"invalid,omitempty"`
	// Scheduler is kube-scheduler's last word on the pod (its PodScheduled
	// condition), when it left one.
	Scheduler string `json:"scheduler,omitempty"`
	// SliceMiB and Policy are what the fit assumed.
	SliceMiB int64  `json:"sliceMiB,omitempty"`
	Policy   string `json:"policy,omitempty"`
	// Fits lists the nodes the pod fits on now, best first.
	Fits []NodeScore `json:"fits,omitempty"`
	// Groups lists the other nodes, grouped by the reason they refuse the
	// pod, the largest group first.
	Groups []ReasonGroup `json:"groups,omitempty"`
}

// NodeScore is a node the pod fits on, with the policy's score.
type NodeScore struct {
	Node  string  `json:"node"`
	Score float64 `json:"score"`
}

// ReasonGroup is the nodes that refuse a pod for one reason.
type ReasonGroup struct {
	Reason string `json:"reason"`
	// Resolvable is true when evicting pods could make room
	// (allocator.Unschedulable rather than UnschedulableAndUnresolvable).
	Resolvable bool     `json:"resolvable"`
	Nodes      []string `json:"nodes"`
}

// ExplainOptions are the assumptions of a fit the extender would make with
// its own flags.
type ExplainOptions struct {
	// SliceMiB is the cluster-wide slice size; 0 takes the one most node
	// inventories use.
	SliceMiB int64
	// Policy scores the nodes; it does not change which nodes fit.
	Policy allocator.Policy
	// RuntimeClassModes is the extender's --runtime-class-isolation: the
	// VM-sandbox mode of the pod's runtime class, if it maps to one.
	RuntimeClassModes api.RuntimeClassModes
}

// Explain says why pod is not placed: it loads every node and placed pod
// into the extender's cache (scheduler/cache, the extender's own charging
// rules), fits the pod's request on every node with the allocator, and
// groups the nodes by their first blocker. Nodes kube-scheduler itself
// filters out before asking the extender (cordoned, an untolerated
// NoSchedule/NoExecute taint, a nodeSelector that does not match) are
// grouped by that reason instead. Reservations an extender holds for
// binds in flight are not visible from the API server.
func Explain(ctx context.Context, pod *corev1.Pod, in Input, o ExplainOptions) (*Explanation, error) {
	e := &Explanation{Pod: pod.Namespace + "/" + pod.Name, Node: pod.Spec.NodeName, Scheduler: schedulerMessage(pod)}
	req, err := api.ParsePodRequest(pod)
	if err != nil {
		e.Invalid = err.Error()
		return e, nil
	}
	if !req.HasGPU() {
		return nil, fmt.Errorf("pod %s requests no gpuslice resources", e.Pod)
	}
	e.Models = req.Models
	req.Sandbox = o.RuntimeClassModes.ModeFor(pod.Spec.RuntimeClassName)
	e.Sandbox = req.Sandbox
	if pod.Spec.RuntimeClassName != nil {
		e.RuntimeClass = *pod.Spec.RuntimeClassName
	}
	for _, c := range req.Containers {
		if c.HasGPU() {
			e.Request = append(e.Request, requestLine(c))
		}
	}
	if raw, ok := pod.Annotations[api.AnnotationPlacement]; ok {
		pl, err := api.ParsePlacement(raw)
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", e.Pod, err)
		}
		e.Placement = pl
		if s := stalePods([]corev1.Pod{*pod}, "", in.Now); len(s) > 0 {
			e.Stale = s[0].Reason
		}
		return e, nil
	}
	if e.Node != "" {
		return e, nil
	}
	e.SliceMiB = o.SliceMiB
	if e.SliceMiB <= 0 {
		e.SliceMiB = commonSliceMiB(in.Nodes)
	}
	pol := o.Policy
	if pol == nil {
		pol = allocator.Binpack{}
	}
	e.Policy = pol.Name()
	fitNodes(klog.FromContext(ctx), e, pod, req, in, pol)
	return e, nil
}

// fitNodes fills in the fits and the reason groups.
func fitNodes(logger klog.Logger, e *Explanation, pod *corev1.Pod, req *api.PodRequest, in Input, pol allocator.Policy) {
	// The cache's complaints about single placements are inspect's to report.
	c := cache.New(logr.Discard(), e.SliceMiB, time.Minute)
	for i := range in.Nodes {
		c.SetNode(in.Nodes[i].Name, in.Nodes[i].Annotations[api.AnnotationInventory])
	}
	for i := range in.Pods {
		c.OnPod(&in.Pods[i]) // the cache charges bound pods only
	}
	groups := map[string]*ReasonGroup{}
	group := func(reason string, resolvable bool, node string) {
		g, ok := groups[reason]
		if !ok {
			g = &ReasonGroup{Reason: reason, Resolvable: resolvable}
			groups[reason] = g
		}
		g.Nodes = append(g.Nodes, node)
	}
	var names []string
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if reason := schedulerFilter(logger, pod, n); reason != "" {
			group(reason, false, n.Name)
			continue
		}
		names = append(names, n.Name)
	}
	for i, f := range c.FitNodes(names, req, pol) {
		if f.Code == allocator.Success {
			e.Fits = append(e.Fits, NodeScore{Node: names[i], Score: f.Score})
			continue
		}
		group(f.Message(), f.Code == allocator.Unschedulable, names[i])
	}
	slices.SortStableFunc(e.Fits, func(a, b NodeScore) int { return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Node, b.Node)) })
	for _, g := range groups {
		slices.Sort(g.Nodes)
		e.Groups = append(e.Groups, *g)
	}
	slices.SortFunc(e.Groups, func(a, b ReasonGroup) int {
		return cmp.Or(cmp.Compare(len(b.Nodes), len(a.Nodes)), cmp.Compare(a.Reason, b.Reason))
	})
}

// schedulerFilter returns why kube-scheduler would not offer the node to
// the extender at all, or "".
func schedulerFilter(logger klog.Logger, pod *corev1.Pod, n *corev1.Node) string {
	if n.Spec.Unschedulable {
		return "node is cordoned (spec.unschedulable)"
	}
	if len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(n.Labels)) {
		return "node does not match the pod's nodeSelector"
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !slices.ContainsFunc(pod.Spec.Tolerations, func(tol corev1.Toleration) bool { return tol.ToleratesTaint(logger, t, false) }) {
			return fmt.Sprintf("node has a taint the pod does not tolerate (%s=%s:%s)", t.Key, t.Value, t.Effect)
		}
	}
	return ""
}

// schedulerMessage returns the message of a PodScheduled=False condition.
func schedulerMessage(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// commonSliceMiB returns the slice size most node inventories use (the
// smaller one on a tie), or api.DefaultSliceMiB when none has one.
func commonSliceMiB(nodes []corev1.Node) int64 {
	count := map[int64]int{}
	for _, inv := range inventories(nodes) {
		count[inv.SliceMiB]++
	}
	best, n := int64(api.DefaultSliceMiB), 0
	for s, c := range count {
		if c > n || (c == n && s < best) {
			best, n = s, c
		}
	}
	return best
}

func requestLine(c api.ContainerRequest) string {
	kind := ""
	switch {
	case c.Sidecar:
		kind = " (sidecar)"
	case c.Init:
		kind = " (init)"
	}
	u := c.PerGPU()
	return fmt.Sprintf("%s%s: %d GPU(s), each %d slices, %d core, %d slot", c.Name, kind, c.GPUs(), u.Slices, u.Core, u.Slots)
}
