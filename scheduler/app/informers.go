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
)

// boundPods selects the pods that are bound to a node: the only ones the
// cache charges (a pod's shares start at bind, which the extender assumes
// itself) and the only ones bind's pod lister must see (to refuse a pod
// that is already bound). Leaving pending pods out halves the pod events
// the extender decodes during a burst: a pod arrives once, bound.
const boundPods = "spec.nodeName!="

// newInformers returns an informer factory with the node informer and the
// informer of bound pods the cache follows, their cached objects slimmed
// to what the extender reads (slim).
func newInformers(client kubernetes.Interface) (informers.SharedInformerFactory, toolscache.SharedIndexInformer, toolscache.SharedIndexInformer, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.Core().V1().Nodes().Informer()
	podInf := factory.InformerFor(&v1.Pod{}, func(c kubernetes.Interface, resync time.Duration) toolscache.SharedIndexInformer {
		return coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync,
			toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc},
			func(o *metav1.ListOptions) { o.FieldSelector = boundPods })
	})
	if err := podInf.SetTransform(slim); err != nil {
		return nil, nil, nil, fmt.Errorf("set pod transform: %w", err)
	}
	if err := nodeInf.SetTransform(slim); err != nil {
		return nil, nil, nil, fmt.Errorf("set node transform: %w", err)
	}
	return factory, nodeInf, podInf, nil
}

// slim replaces a cached pod or node by a copy with only what the cache
// and bind read: the cache holds every bound pod of the cluster, and a
// pod's full object (volumes, env, probes, status, other annotations) is
// many times the size of that. A node keeps its identity and gpuslice
// annotations (the inventory); a pod its identity, deletion timestamp,
// gpuslice annotations, node, scheduler and runtime class, phase, and each
// container's name, restart policy and gpuslice resources. Other objects
// pass unchanged.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Pod:
		p := &v1.Pod{ObjectMeta: slimMeta(&o.ObjectMeta)}
		p.Spec = v1.PodSpec{
			NodeName: o.Spec.NodeName, SchedulerName: o.Spec.SchedulerName, RuntimeClassName: o.Spec.RuntimeClassName,
			InitContainers: slimContainers(o.Spec.InitContainers), Containers: slimContainers(o.Spec.Containers),
		}
		p.Status.Phase = o.Status.Phase
		return p, nil
	case *v1.Node:
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

func slimContainers(cs []v1.Container) []v1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]v1.Container, len(cs))
	for i := range cs {
		out[i] = v1.Container{Name: cs[i].Name, RestartPolicy: cs[i].RestartPolicy, Resources: v1.ResourceRequirements{
			Limits: slimResources(cs[i].Resources.Limits), Requests: slimResources(cs[i].Resources.Requests),
		}}
	}
	return out
}

func slimResources(l v1.ResourceList) v1.ResourceList {
	var out v1.ResourceList
	for name, q := range l {
		if strings.HasPrefix(string(name), api.Domain+"/") {
			if out == nil {
				out = v1.ResourceList{}
			}
			out[name] = q
		}
	}
	return out
}
