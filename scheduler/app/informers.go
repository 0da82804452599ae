package app

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
)

// newInformers returns an informer factory with the node and pod informers
// the cache follows, their cached objects stripped of managed fields.
func newInformers(client kubernetes.Interface) (informers.SharedInformerFactory, toolscache.SharedIndexInformer, toolscache.SharedIndexInformer, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.Core().V1().Nodes().Informer()
	podInf := factory.Core().V1().Pods().Informer()
	if err := podInf.SetTransform(stripManagedFields); err != nil {
		return nil, nil, nil, fmt.Errorf("set pod transform: %w", err)
	}
	if err := nodeInf.SetTransform(stripManagedFields); err != nil {
		return nil, nil, nil, fmt.Errorf("set node transform: %w", err)
	}
	return factory, nodeInf, podInf, nil
}

// stripManagedFields drops managed fields from cached objects: the cache
// holds every pod, and managed fields are most of their size.
func stripManagedFields(obj any) (any, error) {
	if _, ok := obj.(*v1.Pod); !ok {
		if _, ok := obj.(*v1.Node); !ok {
			return obj, nil
		}
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
