package extender

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// Bind refuses a pod the pod informer's store (cache.Pod objects, as the
// extender's informer keeps them) shows bound, or under another UID, and
// calls no API for it.
func TestBindChecksBoundPods(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	other := p.DeepCopy()
	other.UID = "another-uid"
	boundElsewhere := p.DeepCopy()
	boundElsewhere.Spec.NodeName = "t4"
	tests := []struct {
		name    string
		stored  *v1.Pod // nil: the store does not hold the pod
		wantErr string  // "": bound
	}{
		{name: "not in the store (pending)", stored: nil},
		{name: "bound already", stored: boundElsewhere, wantErr: "already bound to t4"},
		{name: "another pod of that name", stored: other, wantErr: "not the uid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext, c, client := newTestExtender(t, testNodes(t))
			if _, err := client.CoreV1().Pods("default").Create(t.Context(), p, metaCreate); err != nil {
				t.Fatal(err)
			}
			store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
			if tc.stored != nil {
				if err := store.Add(cache.NewPod(tc.stored)); err != nil {
					t.Fatal(err)
				}
			}
			ext.pods = cache.NewPodLister(store)
			if res := ext.Filter(t.Context(), argsFor(p, "a100")); len(*res.NodeNames) != 1 {
				t.Fatalf("filter = %+v", res)
			}
			before := testutil.FreeSlices(c)
			client.ClearActions()
			err := ext.Bind(t.Context(), bindArgs(p, "a100"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("bind: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("bind err = %v, want %q", err, tc.wantErr)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() == "create" && a.GetSubresource() == "binding" {
					t.Errorf("refused bind sent a Binding: %v", a)
				}
			}
			if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("refused bind changed the cache (-before +after):\n%s", diff)
			}
		})
	}
}

// cache.PodLister reads a store of cache.Pod objects and one of v1.Pods
// alike.
func TestPodListerStores(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	p.Spec.NodeName = "n1"
	type found struct {
		UID   types.UID
		Node  string
		Found bool
	}
	for name, obj := range map[string]any{"cache.Pod": cache.NewPod(p), "v1.Pod": p} {
		store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
		if err := store.Add(obj); err != nil {
			t.Fatal(err)
		}
		l := cache.NewPodLister(store)
		var got [2]found
		got[0].UID, got[0].Node, got[0].Found = l.BoundPod(p.Namespace, p.Name)
		got[1].UID, got[1].Node, got[1].Found = l.BoundPod(p.Namespace, "missing")
		if diff := cmp.Diff([2]found{{UID: p.UID, Node: "n1", Found: true}, {}}, got); diff != "" {
			t.Errorf("%s store (-want +got):\n%s", name, diff)
		}
	}
}
