package app

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// boundPods selects the pods that are bound to a node: the only ones the
// cache charges (a pod's shares start at bind, which the extender assumes
// itself) and the only ones bind's pod lister must see (to refuse a pod
// that is already bound). Leaving pending pods out halves the pod events
// the extender decodes during a burst: a pod arrives once, bound.
const boundPods = "spec.nodeName!="

// newInformers returns an informer factory with the node informer and the
// informer of bound pods the cache follows, and bind's lister over the
// latter. The node informer stores a cache.Node per node
// (cache.TransformNode) and the pod informer a cache.Pod per pod
// (cache.TransformPod), each under the factory's key for its cache type,
// so that nothing takes them for v1.Node and v1.Pod informers.
func newInformers(client kubernetes.Interface) (informers.SharedInformerFactory, toolscache.SharedIndexInformer, toolscache.SharedIndexInformer, cache.PodLister, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.InformerFor(&cache.Node{}, func(c kubernetes.Interface, resync time.Duration) toolscache.SharedIndexInformer {
		return coreinformers.NewNodeInformer(c, resync, toolscache.Indexers{})
	})
	podInf := factory.InformerFor(&cache.Pod{}, func(c kubernetes.Interface, resync time.Duration) toolscache.SharedIndexInformer {
		return coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync, toolscache.Indexers{},
			func(o *metav1.ListOptions) { o.FieldSelector = boundPods })
	})
	if err := podInf.SetTransform(cache.TransformPod); err != nil {
		return nil, nil, nil, cache.PodLister{}, fmt.Errorf("set pod transform: %w", err)
	}
	if err := nodeInf.SetTransform(cache.TransformNode); err != nil {
		return nil, nil, nil, cache.PodLister{}, fmt.Errorf("set node transform: %w", err)
	}
	return factory, nodeInf, podInf, cache.NewPodLister(podInf.GetStore()), nil
}
