package cache

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
)

// AddEventHandlers feeds the cache from node and pod informers; the pod
// informer's objects may be *Pod (TransformPod) or *v1.Pod. The
// returned func reports when the cache is built: both informers have synced
// and every object of their initial lists has been applied to the cache
// (an informer's own HasSynced turns true before its handlers have run).
// Until then the cache's view of placed pods may be partial, and no
// decision may be made on it (the readiness rule).
func (c *Cache) AddEventHandlers(nodes, pods toolscache.SharedIndexInformer) (toolscache.InformerSynced, error) {
	nodeReg, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n, ok := obj.(*v1.Node); ok {
				c.SetNode(n.Name, n.Annotations[api.AnnotationInventory])
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*v1.Node)
			n, ok2 := newObj.(*v1.Node)
			if ok1 && ok2 && o.Annotations[api.AnnotationInventory] != n.Annotations[api.AnnotationInventory] {
				c.SetNode(n.Name, n.Annotations[api.AnnotationInventory])
			}
		},
		DeleteFunc: func(obj any) {
			if n, ok := deleted[*v1.Node](obj); ok {
				c.DeleteNode(n.Name)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add node event handler: %w", err)
	}
	podReg, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.OnPod(obj) },
		UpdateFunc: func(_, newObj any) { c.OnPod(newObj) },
		DeleteFunc: func(obj any) {
			if p, ok := podOf(obj); ok {
				c.RemovePod(p.UID)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add pod event handler: %w", err)
	}
	return func() bool { return nodeReg.HasSynced() && podReg.HasSynced() }, nil
}

// deleted returns the object of a delete notification, unwrapping the
// tombstone an informer hands over when it missed the deletion.
func deleted[T any](obj any) (T, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	t, ok := obj.(T)
	return t, ok
}
