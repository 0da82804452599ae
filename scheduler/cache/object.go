package cache

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
)

// Pod is what the cache and bind read of a bound pod, taken from its
// *v1.Pod once: its identity, node and deletion timestamp, whether it has
// finished, and its placement annotation parsed and checked against its
// request (which holds the gpuslice requests of its containers and init
// containers, their restart policies, and its gpuslice annotations).
//
// The extender's pod informer stores a Pod in place of each bound
// *v1.Pod (NewPod is its transform, PodLister reads it for bind): the
// informer holds every bound pod of the cluster, and a v1.Pod, even
// stripped to what the cache reads, is several times the size of this. The
// cache's entry for the pod shares its parsed placement and request.
//
// A Pod is read-only once made. It implements runtime.Object and
// metav1.Object, as an informer's store and its key functions need; its
// ObjectMeta holds only the name, namespace, UID, resource version (the
// informer tells updates from resyncs by it) and deletion timestamp.
type Pod struct {
	metav1.ObjectMeta
	// key is namespace/name; Name and Namespace are its substrings.
	key  string
	node string
	// placed: the pod is bound and has a placement annotation.
	placed   bool
	terminal bool
	// placement and req are the parsed placement and request, when placed
	// and readable; err says why the placement cannot be charged (it is
	// unreadable, or inconsistent with the request or node), nil when it
	// can.
	placement *api.Placement
	req       *api.PodRequest
	err       error
	// reconcile: the pod's allocation record equals placement (the device
	// plugin's reconcile rewrote the placement).
	reconcile bool
}

// NewPod reads what the cache and bind need of pod. The result shares no
// memory with pod except strings.
func NewPod(pod *v1.Pod) *Pod {
	key := pod.Namespace + "/" + pod.Name
	p := &Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key[:len(pod.Namespace)], Name: key[len(pod.Namespace)+1:],
			UID: pod.UID, ResourceVersion: pod.ResourceVersion, DeletionTimestamp: pod.DeletionTimestamp,
		},
		key:      key,
		node:     pod.Spec.NodeName,
		terminal: api.IsTerminal(pod),
	}
	raw, has := pod.Annotations[api.AnnotationPlacement]
	if !has || p.node == "" || p.terminal {
		return p
	}
	p.placed = true
	pl, err := api.ParsePlacement(raw)
	var req *api.PodRequest
	if err == nil {
		req, err = api.ParsePodRequest(pod)
	}
	if err == nil {
		err = pl.ConsistentWith(req, p.node)
	}
	if err != nil {
		p.err = err
		return p
	}
	if pl.Node == p.node {
		pl.Node = p.node // one copy of the node's name
	}
	p.placement, p.req = pl, req
	if raw, ok := pod.Annotations[api.AnnotationAllocated]; ok {
		a, err := api.ParseAllocation(raw)
		p.reconcile = err == nil && a.Equal(pl)
	}
	return p
}

// NodeName is the node the pod is bound to.
func (p *Pod) NodeName() string { return p.node }

// GetObjectKind implements runtime.Object: a Pod carries no type
// metadata.
func (p *Pod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. The copy shares the parsed
// placement and request, which nothing modifies.
func (p *Pod) DeepCopyObject() runtime.Object {
	c := *p
	meta := &p.ObjectMeta
	meta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// TransformPod is an informer transform (SharedIndexInformer.SetTransform)
// that stores a *v1.Pod as a *Pod. Other objects pass unchanged: a Pod
// again (an informer may transform an object twice), and the tombstone of
// a deletion the informer missed, whose object is already transformed.
func TransformPod(obj any) (any, error) {
	if pod, ok := obj.(*v1.Pod); ok {
		return NewPod(pod), nil
	}
	return obj, nil
}

// podOf returns the Pod of an informer's object: a *Pod, a *v1.Pod (from
// an informer without TransformPod), or either in a tombstone.
func podOf(obj any) (*Pod, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *Pod:
		return o, true
	case *v1.Pod:
		return NewPod(o), true
	}
	return nil, false
}

// PodLister finds bound pods in the store of the pod informer (its
// GetStore or GetIndexer), whether that holds *Pod (TransformPod) or
// *v1.Pod objects.
type PodLister struct{ store toolscache.Store }

// NewPodLister returns a PodLister over store.
func NewPodLister(store toolscache.Store) PodLister { return PodLister{store: store} }

// BoundPod returns the UID and node of the pod namespace/name, if the
// store holds it.
func (l PodLister) BoundPod(namespace, name string) (uid types.UID, node string, found bool) {
	obj, ok, err := l.store.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return "", "", false
	}
	switch o := obj.(type) {
	case *Pod:
		return o.UID, o.node, true
	case *v1.Pod:
		return o.UID, o.Spec.NodeName, true
	}
	return "", "", false
}
