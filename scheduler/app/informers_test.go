package app

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// The pod informer lists and watches bound pods only; the node informer
// every node.
func TestInformersSelectBoundPods(t *testing.T) {
	client := fake.NewClientset()
	factory, nodeInf, podInf, _, err := newInformers(client)
	if err != nil {
		t.Fatal(err)
	}
	if got := factory.InformerFor(&cache.Pod{}, nil); got != podInf {
		t.Fatal("the factory's pod informer is not the filtered one")
	}
	factory.Start(t.Context().Done())
	if !toolscache.WaitForCacheSync(t.Context().Done(), nodeInf.HasSynced, podInf.HasSynced) {
		t.Fatal("informers did not sync")
	}
	selectors := map[string][]string{}
	for _, a := range client.Actions() {
		if l, ok := a.(k8stesting.ListActionImpl); ok {
			selectors[l.GetResource().Resource] = append(selectors[l.GetResource().Resource], l.GetListRestrictions().Fields.String())
		}
	}
	if got := selectors["pods"]; len(got) == 0 || got[0] != boundPods {
		t.Errorf("pod list field selectors = %q, want %q", got, boundPods)
	}
	if got := selectors["nodes"]; len(got) == 0 || got[0] != "" {
		t.Errorf("node list field selectors = %q, want none", got)
	}
}

// The pod informer stores cache.Pod objects; the cache fed from it charges
// a bound pod's placement and frees it on deletion, and bind's lister finds
// the pod.
func TestInformersFeedCacheAndLister(t *testing.T) {
	ctx := t.Context()
	p := placedPod(t, 1, "gpu-1", 0)
	client := fake.NewClientset(testutil.GPUNode(t, "gpu-1", 8, "H100", 80, 48), p)
	factory, nodeInf, podInf, lister, err := newInformers(client)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(klog.Background(), 1024, time.Minute)
	built, err := c.AddEventHandlers(nodeInf, podInf)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	if !toolscache.WaitForCacheSync(ctx.Done(), nodeInf.HasSynced, podInf.HasSynced, built) {
		t.Fatal("informers did not sync")
	}
	for _, obj := range podInf.GetStore().List() {
		if _, ok := obj.(*cache.Pod); !ok {
			t.Errorf("pod informer stores a %T, want *cache.Pod", obj)
		}
	}
	if !c.HasPod(p.UID) {
		t.Fatal("cache did not charge the bound pod")
	}
	type found struct {
		UID   types.UID
		Node  string
		Found bool
	}
	var got found
	got.UID, got.Node, got.Found = lister.BoundPod(p.Namespace, p.Name)
	if diff := cmp.Diff(found{UID: p.UID, Node: "gpu-1", Found: true}, got); diff != "" {
		t.Errorf("lister (-want +got):\n%s", diff)
	}
	if err := client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "deleted pod freed", func() bool { return !c.HasPod(p.UID) })
}
