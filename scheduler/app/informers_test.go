package app

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	toolscache "k8s.io/client-go/tools/cache"
)

// The pod informer lists and watches bound pods only; the node informer
// every node.
func TestInformersSelectBoundPods(t *testing.T) {
	client := fake.NewClientset()
	factory, nodeInf, podInf, err := newInformers(client)
	if err != nil {
		t.Fatal(err)
	}
	if got := factory.InformerFor(&v1.Pod{}, nil); got != podInf {
		t.Fatal("the factory's pod informer (the bind lister's) is not the filtered one")
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
