package app

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
)

// boundPods selects the pods that are bound to a node: the only ones the
// cache charges (a pod's shares start at bind, which the extender assumes
// itself) and the only ones bind's pod lister must see (to refuse a pod
// that is already bound). Leaving pending pods out halves the pod events
// the extender decodes during a burst: a pod arrives once, bound.
const boundPods = "spec.nodeName!="

// newInformers returns an informer factory with the node informer and the
// informer of bound pods the cache follows, their cached objects stripped
// of managed fields.
func newInformers(client kubernetes.Interface) (informers.SharedInformerFactory, toolscache.SharedIndexInformer, toolscache.SharedIndexInformer, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.Core().V1().Nodes().Informer()
	podInf := factory.InformerFor(&v1.Pod{}, func(c kubernetes.Interface, resync time.Duration) toolscache.SharedIndexInformer {
		return coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync,
			toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc},
			func(o *metav1.ListOptions) { o.FieldSelector = boundPods })
	})
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
