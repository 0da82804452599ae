package deviceplugin

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuslice/gpuslice/api"
)

// PodLister lists the pods bound to this node (an informer cache in
// production, a slice in tests).
type PodLister interface {
	ListPods() ([]*corev1.Pod, error)
}

// PodResources is kubelet's pod-resources API.
type PodResources interface {
	List(ctx context.Context) ([]*podresourcesv1.PodResources, error)
}

// snapshot is everything the matcher and the reconcile read: one candidate
// per container that asks for gpuslice resources, with what kubelet gave it.
type snapshot struct {
	node  string
	cands []*candidate
	// prOwner maps a device ID to the container pod-resources says has it.
	prOwner map[string]*candidate
	// listed holds the pods ("namespace/name") kubelet's pod-resources
	// lists; nil when pod-resources did not answer (or is not configured).
	// kubelet lists a pod from before it admits it, so a pod it does not
	// list cannot be the one an Allocate call is for.
	listed map[string]bool
	prErr  error
}

// snapshot is the hand-off's only I/O: it lists the node's pods and
// kubelet's pod-resources and turns them, with the ledger, into candidates.
// Called with mu held.
func (b *Broker) snapshot(ctx context.Context) (*snapshot, error) {
	pods, err := b.pods.ListPods()
	if err != nil {
		return nil, fmt.Errorf("list pods of node %s: %w", b.node, err)
	}
	var prs []*podresourcesv1.PodResources
	var prErr error
	if b.pr != nil {
		if prs, prErr = b.pr.List(ctx); prErr != nil {
			klog.FromContext(ctx).Info("Pod resources unavailable; using this process's own record", "err", prErr)
		}
	}
	return buildSnapshot(b.node, pods, b.pr != nil && prErr == nil, prs, prErr, b.ledger), nil
}

// buildSnapshot is the pure part of snapshot. havePR says whether prs is
// kubelet's answer (false: pod-resources unavailable or not configured).
func buildSnapshot(node string, pods []*corev1.Pod, havePR bool, prs []*podresourcesv1.PodResources, prErr error, ledger []*ledgerEntry) *snapshot {
	s := &snapshot{node: node, prOwner: map[string]*candidate{}, prErr: prErr}
	byName := map[string]*candidate{}
	for _, p := range pods {
		if p.Spec.NodeName != node || api.IsTerminal(p) {
			continue
		}
		for _, c := range podCandidates(node, p) {
			s.cands = append(s.cands, c)
			byName[p.Namespace+"/"+p.Name+"/"+c.key.Container] = c
		}
	}
	if havePR {
		s.listed = map[string]bool{}
		for _, pr := range prs {
			s.listed[pr.GetNamespace()+"/"+pr.GetName()] = true
			for _, cr := range pr.GetContainers() {
				c := byName[pr.GetNamespace()+"/"+pr.GetName()+"/"+cr.GetName()]
				if c == nil {
					continue
				}
				for _, d := range cr.GetDevices() {
					k, ok := KindOf(d.GetResourceName())
					if !ok {
						continue
					}
					c.have[k] = append(c.have[k], d.GetDeviceIds()...)
					for _, id := range d.GetDeviceIds() {
						s.prOwner[id] = c
					}
				}
			}
		}
	}
	for _, e := range ledger {
		if s.prOwner[e.ids[0]] != nil {
			continue // pod-resources knows better
		}
		for _, c := range s.cands {
			if c.key == e.key && len(c.have[e.kind]) == 0 {
				c.have[e.kind] = e.ids
			}
		}
	}
	// kubelet allocates a pod's containers in order (init containers, then
	// app containers): a container before one that has devices is done
	// (a finished init container, which pod-resources does not list).
	seen := map[types.UID]int{}
	for i := len(s.cands) - 1; i >= 0; i-- {
		c := s.cands[i]
		if last, ok := seen[c.key.UID]; ok && last > c.order && !c.inProgress() {
			c.done = true
		}
		if c.inProgress() {
			if _, ok := seen[c.key.UID]; !ok {
				seen[c.key.UID] = c.order
			}
		}
	}
	for _, c := range s.cands {
		for _, k := range Kinds() {
			c.have[k] = slices.Sorted(slices.Values(c.have[k]))
		}
	}
	return s
}

// podCandidates returns the candidates of one pod, in kubelet's allocation
// order. A container keeps no placement entry (cp nil, noPlacement says
// why) when the pod's request breaks the contract, or its placement is
// missing, unreadable, for another node, or inconsistent with the request:
// such a container is never handed a share (see match.go).
func podCandidates(node string, p *corev1.Pod) []*candidate {
	req, reqErr := api.ParsePodRequest(p)
	var pl *api.Placement
	why := ""
	switch v, ok := p.Annotations[api.AnnotationPlacement]; {
	case reqErr != nil:
		why = "its request breaks the gpuslice resource contract: " + reqErr.Error()
	case !ok:
		why = "it has no " + api.AnnotationPlacement + " annotation (did it bypass the gpuslice scheduler extender?)"
	default:
		parsed, err := api.ParsePlacement(v)
		switch {
		case err != nil:
			why = "its placement is invalid: " + err.Error()
		case parsed.Node != node:
			why = fmt.Sprintf("its placement is for node %q, not %q (stale placement)", parsed.Node, node)
		default:
			if err := parsed.ConsistentWith(req, node); err != nil {
				why = "its placement does not match its request: " + err.Error()
			} else {
				pl = parsed
			}
		}
	}
	var out []*candidate
	order := 0
	add := func(c *corev1.Container, init bool) {
		defer func() { order++ }()
		var r [numKinds]int64
		gpus := 1
		if reqErr == nil {
			cr := req.Container(c.Name, init)
			if cr == nil || !cr.HasGPU() {
				return
			}
			r = [numKinds]int64{KindMem: cr.Slices, KindCore: cr.Core, KindSlot: cr.Count}
			gpus = cr.GPUs()
		} else {
			// The request is refused anyway; read it leniently only to
			// know that the container asks for gpuslice resources.
			var ok bool
			if r, ok = lenientRequest(c); !ok {
				return
			}
		}
		cand := &candidate{
			key: ContainerKey{Namespace: p.Namespace, Pod: p.Name, UID: p.UID, Container: c.Name, Init: init},
			pod: p, placement: pl, order: order, req: r, gpus: gpus, noPlacement: why,
		}
		if pl != nil {
			cand.cp = pl.Container(c.Name, init)
		}
		out = append(out, cand)
	}
	for i := range p.Spec.InitContainers {
		add(&p.Spec.InitContainers[i], true)
	}
	for i := range p.Spec.Containers {
		add(&p.Spec.Containers[i], false)
	}
	return out
}

// lenientRequest reads a container's gpuslice quantities without the
// contract's checks; ok says whether it asks for any.
func lenientRequest(c *corev1.Container) ([numKinds]int64, bool) {
	var r [numKinds]int64
	asks := false
	for _, k := range Kinds() {
		q, ok := c.Resources.Limits[corev1.ResourceName(k.Resource())]
		if !ok {
			q, ok = c.Resources.Requests[corev1.ResourceName(k.Resource())]
		}
		if ok && q.Sign() > 0 {
			r[k] = max(q.Value(), 1)
			asks = true
		}
	}
	return r, asks
}
