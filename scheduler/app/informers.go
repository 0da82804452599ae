package app

import (
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
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
// latter. The node informer's objects are slimmed to what the extender
// reads (slimNode); the pod informer stores a cache.Pod per pod
// (cache.TransformPod), under the factory's key for cache.Pod, so that
// nothing takes it for a v1.Pod informer.
func newInformers(client kubernetes.Interface) (informers.SharedInformerFactory, toolscache.SharedIndexInformer, toolscache.SharedIndexInformer, cache.PodLister, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.Core().V1().Nodes().Informer()
	podInf := factory.InformerFor(&cache.Pod{}, func(c kubernetes.Interface, resync time.Duration) toolscache.SharedIndexInformer {
		return coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync, toolscache.Indexers{},
			func(o *metav1.ListOptions) { o.FieldSelector = boundPods })
	})
	if err := podInf.SetTransform(cache.TransformPod); err != nil {
		return nil, nil, nil, cache.PodLister{}, fmt.Errorf("set pod transform: %w", err)
	}
	if err := nodeInf.SetTransform(slimNode); err != nil {
		return nil, nil, nil, cache.PodLister{}, fmt.Errorf("set node transform: %w", err)
	}
	return factory, nodeInf, podInf, cache.NewPodLister(podInf.GetStore()), nil
}

// slimNode replaces a cached node by a copy with only its identity and
// gpuslice annotations (the inventory): the extender reads nothing else.
// Other objects pass unchanged.
func slimNode(obj any) (any, error) {
	if o, ok := obj.(*v1.Node); ok {
		return &v1.Node{ObjectMeta: slimMeta(&o.ObjectMeta)}, nil
	}
	return obj, nil
}

func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, api.Domain+"/") {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out
}
