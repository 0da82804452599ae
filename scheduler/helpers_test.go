package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// inventory returns an inventory annotation of n GPUs of memGiB each (1 GiB
// slices), with slots slots.
func inventory(t testing.TB, node string, n int, model string, memGiB, slots int64) string {
	t.Helper()
	inv := api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024}
	for i := range n {
		g := api.GPU{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", node, i), Model: model, MemoryMiB: memGiB * 1024, Slices: memGiB, Slots: slots, CoreUnits: 100, NUMANode: i / 4, Healthy: true, Isolation: api.IsolationNone}
		for j := range n {
			if j != i {
				g.Links = append(g.Links, api.Link{Peer: j, Type: api.LinkNVLink, NVLinks: 12})
			}
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gpuNode(t testing.TB, name string, n int, model string, memGiB, slots int64) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{api.AnnotationInventory: inventory(t, name, n, model, memGiB, slots)}}}
}

// ctr is a container with the given gpuslice limits (0 = absent).
func ctr(name string, mem, core, count int64) v1.Container {
	l := v1.ResourceList{}
	if mem != 0 {
		l[api.ResourceGPUMem] = *resource.NewQuantity(mem, resource.DecimalSI)
	}
	if core != 0 {
		l[api.ResourceGPUCore] = *resource.NewQuantity(core, resource.DecimalSI)
	}
	if count != 0 {
		l[api.ResourceGPUCount] = *resource.NewQuantity(count, resource.DecimalSI)
	}
	return v1.Container{Name: name, Image: "busybox", Resources: v1.ResourceRequirements{Limits: l}}
}

func mkPod(name string, cs ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       v1.PodSpec{Containers: cs},
	}
}

// newTestExtender returns an extender on a cache holding the nodes, with a
// fake clientset whose pods/binding emulates kube-apiserver: it checks the
// UID precondition and that the pod is unbound, then sets the node and
// merges the binding's annotations in one write.
func newTestExtender(t testing.TB, nodes []*v1.Node, pods ...*v1.Pod) (*Extender, *Cache, *fake.Clientset) {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	c := NewCache(logger, 1024, time.Minute)
	t.Cleanup(c.Stop)
	for _, n := range nodes {
		c.SetNode(n.Name, n.Annotations[api.AnnotationInventory])
	}
	objs := make([]runtime.Object, 0, len(pods))
	for _, p := range pods {
		objs = append(objs, p)
		c.onPod(p)
	}
	client := fake.NewSimpleClientset(objs...)
	client.PrependReactor("create", "pods", bindingReactor(client))
	pol, err := allocator.NewPolicy(allocator.PolicyBinpack)
	if err != nil {
		t.Fatal(err)
	}
	return NewExtender(c, SinglePolicy(pol), client, nil, testingclock.NewFakePassiveClock(testNow)), c, client
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

// freeSlices returns the free slices of every GPU of every node.
func freeSlices(c *Cache) map[string][]int64 {
	out := map[string][]int64{}
	for _, nf := range c.Snapshot() {
		for _, u := range nf.Free {
			out[nf.Node] = append(out[nf.Node], u.Slices)
		}
	}
	return out
}

// poll waits for cond with a deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
