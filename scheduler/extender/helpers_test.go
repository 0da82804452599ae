package extender

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// newTestExtender returns an extender on a cache holding the nodes, with a
// fake clientset whose pods/binding emulates kube-apiserver: it checks the
// UID precondition and that the pod is unbound, then sets the node and
// merges the binding's annotations in one write.
func newTestExtender(t testing.TB, nodes []*v1.Node, pods ...*v1.Pod) (*Extender, *cache.Cache, *fake.Clientset) {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Minute)
	for _, n := range nodes {
		c.SetNode(n.Name, n.Annotations[api.AnnotationInventory])
	}
	objs := make([]runtime.Object, 0, len(pods))
	for _, p := range pods {
		objs = append(objs, p)
		c.OnPod(p)
	}
	client := fake.NewSimpleClientset(objs...)
	client.PrependReactor("create", "pods", bindingReactor(client))
	pol, err := allocator.NewPolicy(allocator.PolicyBinpack)
	if err != nil {
		t.Fatal(err)
	}
	return NewExtender(c, SinglePolicy(pol), client, nil, testingclock.NewFakePassiveClock(testutil.Now), DefaultPendingLimits()), c, client
}

func bindingReactor(client *fake.Clientset) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := action.(k8stesting.CreateAction).GetObject().(*v1.Binding)
		obj, err := client.Tracker().Get(v1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*v1.Pod).DeepCopy()
		if b.UID != "" && p.UID != b.UID {
			return true, nil, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", b.UID, p.UID)
		}
		if p.Spec.NodeName != "" {
			return true, nil, fmt.Errorf("pod %v is already assigned to node %q", p.Name, p.Spec.NodeName)
		}
		p.Spec.NodeName = b.Target.Name
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for k, v := range b.Annotations {
			p.Annotations[k] = v
		}
		return true, nil, client.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), p, p.Namespace)
	}
}

// names returns a pointer to a slice of node names.
func names(ns ...string) *[]string { return &ns }

// syncedGate returns a readiness gate that passes.
func syncedGate() *Readiness {
	r := NewReadiness(false)
	r.SetSynced(true)
	return r
}
