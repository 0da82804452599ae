package cache

import (
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
)

// AddEventHandlers feeds the cache from node and pod informers; their
// objects may be *Node (TransformNode) or *v1.Node, and *Pod
// (TransformPod) or *v1.Pod. The
// returned func reports when the cache is built: both informers have synced
// and every object of their initial lists has been applied to the cache
// (an informer's own HasSynced turns true before its handlers have run).
// Until then the cache's view of placed pods may be partial, and no
// decision may be made on it (the readiness rule).
func (c *Cache) AddEventHandlers(nodes, pods toolscache.SharedIndexInformer) (toolscache.InformerSynced, error) {
	nodeReg, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n, ok := nodeOf(obj); ok {
				c.OnNode(n)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := nodeOf(oldObj)
			n, ok2 := nodeOf(newObj)
			if ok1 && ok2 && !o.sameInventory(n) {
				c.OnNode(n)
			}
		},
		DeleteFunc: func(obj any) {
			if n, ok := nodeOf(obj); ok {
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
