package cache_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// nodeCases are nodes of every kind the cache tells apart, cluttered with
// what a real node carries and the cache does not read.
func nodeCases(t *testing.T) map[string]*v1.Node {
	mk := func(name string, ann map[string]string) *v1.Node {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "9",
			Labels: map[string]string{"zone": "a"}, Annotations: map[string]string{"node.alpha/x": "y"}}}
		for k, v := range ann {
			n.Annotations[k] = v
		}
		n.Status.Images = []v1.ContainerImage{{Names: []string{"img"}}}
		return n
	}
	other := testutil.Inventory(t, "slices", 2, "T4", 16, 4)
	inv, err := api.ParseInventory(other)
	if err != nil {
		t.Fatal(err)
	}
	inv.SliceMiB *= 2
	twice, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*v1.Node{
		"inventory":          mk("n1", map[string]string{api.AnnotationInventory: testutil.Inventory(t, "n1", 2, "T4", 16, 4)}),
		"no inventory":       mk("bare", nil),
		"empty inventory":    mk("empty", map[string]string{api.AnnotationInventory: ""}),
		"unreadable":         mk("bad", map[string]string{api.AnnotationInventory: "{"}),
		"another slice size": mk("slices", map[string]string{api.AnnotationInventory: twice}),
	}
}

// The cache fed the informer's transformed nodes (cache.Node objects, as a
// store copies them) holds what the cache fed the annotation holds: the
// same free GPUs, the same reason for a node it cannot use. The Node keeps
// no metadata that nothing reads.
func TestNewNode(t *testing.T) {
	for name, full := range nodeCases(t) {
		t.Run(name, func(t *testing.T) {
			fromAnnotation, fromNode := newCache(t, 0), newCache(t, 0)
			fromAnnotation.SetNode(full.Name, full.Annotations[api.AnnotationInventory])
			obj, err := cache.TransformNode(full)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := cache.TransformNode(obj); err != nil || again != obj {
				t.Fatalf("TransformNode of a Node = %v, %v; want it unchanged", again, err)
			}
			n := obj.(runtime.Object).DeepCopyObject().(*cache.Node)
			fromNode.OnNode(n)
			type view struct {
				Free []int64
				Err  string
			}
			read := func(c *cache.Cache) view {
				a, err := c.Node(full.Name)
				var v view
				if err != nil {
					v.Err = err.Error()
				}
				if a != nil {
					for i := range a.Devices {
						v.Free = append(v.Free, a.Free(i).Slices)
					}
				}
				return v
			}
			if diff := cmp.Diff(read(fromAnnotation), read(fromNode)); diff != "" {
				t.Errorf("(-from the annotation +from the Node):\n%s", diff)
			}
			if key, err := toolscache.MetaNamespaceKeyFunc(n); err != nil || key != full.Name {
				t.Errorf("key = %q, %v; want %q", key, err, full.Name)
			}
			if n.UID != full.UID || n.ResourceVersion != full.ResourceVersion || n.Labels != nil || n.Annotations != nil {
				t.Errorf("Node metadata %+v", n.ObjectMeta)
			}
			if !cache.SameInventory(n, cache.NewNode(full)) {
				t.Error("two reads of one node differ")
			}
			got, ok := cache.NodeOf(toolscache.DeletedFinalStateUnknown{Key: full.Name, Obj: obj})
			if !ok || got.Name != full.Name {
				t.Errorf("tombstone: %v, %v", got, ok)
			}
		})
	}
}

// SameInventory tells the update handler whether to read the node again:
// only a changed inventory annotation counts, not labels or status.
func TestNodeSameInventory(t *testing.T) {
	cases := nodeCases(t)
	base := cases["inventory"]
	relabelled := base.DeepCopy()
	relabelled.Labels["zone"] = "b"
	relabelled.ResourceVersion = "10"
	changed := base.DeepCopy()
	changed.Annotations[api.AnnotationInventory] = testutil.Inventory(t, "n1", 3, "T4", 16, 4)
	removed := base.DeepCopy()
	delete(removed.Annotations, api.AnnotationInventory)
	for _, tc := range []struct {
		name string
		a, b *v1.Node
		want bool
	}{
		{"labels and version", base, relabelled, true},
		{"inventory changed", base, changed, false},
		{"inventory removed", base, removed, false},
		{"empty is none", cases["empty inventory"], cases["no inventory"], true},
	} {
		if got := cache.SameInventory(cache.NewNode(tc.a), cache.NewNode(tc.b)); got != tc.want {
			t.Errorf("%s: SameInventory = %v, want %v", tc.name, got, tc.want)
		}
	}
}
