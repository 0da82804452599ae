package cache

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
)

// AddEventHandlers feeds the cache from node and pod informers.
func (c *Cache) AddEventHandlers(nodes, pods toolscache.SharedIndexInformer) error {
	if _, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
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
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*v1.Node); ok {
				c.DeleteNode(n.Name)
			}
		},
	}); err != nil {
		return fmt.Errorf("add node event handler: %w", err)
	}
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.OnPod(obj) },
		UpdateFunc: func(_, newObj any) { c.OnPod(newObj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				c.RemovePod(p.UID)
			}
		},
	}); err != nil {
		return fmt.Errorf("add pod event handler: %w", err)
	}
	return nil
}

// OnPod applies a pod object as the pod informer delivers it on add or
// update. It confirms the placement of a bound pod, and frees the shares of a
// pod that has finished: kube-scheduler, too, counts no resources for
// terminal pods.
func (c *Cache) OnPod(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		c.RemovePod(p.UID)
		return
	}
	placement, has := p.Annotations[api.AnnotationPlacement]
	if !has || p.Spec.NodeName == "" {
		return
	}
	c.AddPod(p.UID, p.Namespace+"/"+p.Name, p.Spec.NodeName, placement)
}
