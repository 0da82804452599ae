package cache_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// cluttered adds what a real pod carries and the cache does not read.
func cluttered(p *v1.Pod) *v1.Pod {
	p = p.DeepCopy()
	p.ResourceVersion = "42"
	p.Labels = map[string]string{"app": "x"}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations["other.io/big"] = "xxxxxxxx"
	p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	p.Spec.Volumes = []v1.Volume{{Name: "data"}}
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = "main:1"
		p.Spec.Containers[i].Env = []v1.EnvVar{{Name: "A", Value: "b"}}
	}
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady}}
	return p
}

// podCases are bound pods of every kind the cache tells apart.
func podCases(t *testing.T) map[string]*v1.Pod {
	always := v1.ContainerRestartPolicyAlways
	encode := func(pl *api.Placement) string {
		s, err := pl.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sidecars := testutil.Pod("sidecars", testutil.Container("app", 4, 0, 0))
	side := testutil.Container("side", 2, 0, 0)
	side.RestartPolicy = &always
	sidecars.Spec.InitContainers = []v1.Container{side, testutil.Container("init", 8, 0, 0)}
	sidecars.Spec.NodeName = "n1"
	dev := func(slices int64) []api.DeviceShare {
		return []api.DeviceShare{{UUID: testutil.GPUUUID("n1", 0), Slices: slices, Slots: 1}}
	}
	sidecars.Annotations = map[string]string{api.AnnotationPlacement: encode(&api.Placement{Version: api.PlacementVersion, Node: "n1", Containers: []api.ContainerPlacement{
		{Name: "side", Init: true, Devices: dev(2)}, {Name: "init", Init: true, Devices: dev(8)}, {Name: "app", Devices: dev(4)},
	}})}
	models := bound(t, "models", "n1", 4, placement("n1", 4, 1))
	models.Annotations[api.AnnotationGPUModels] = "T4"
	reconciled := bound(t, "reconciled", "n1", 4, placement("n1", 4, 1))
	reconciled.Annotations[api.AnnotationAllocated] = encode(placement("n1", 4, 1))
	forgedAlloc := bound(t, "forged-alloc", "n1", 4, placement("n1", 4, 1))
	forgedAlloc.Annotations[api.AnnotationAllocated] = encode(placement("n1", 4, 0))
	unreadable := bound(t, "unreadable", "n1", 4, nil)
	unreadable.Annotations = map[string]string{api.AnnotationPlacement: "{"}
	terminal := bound(t, "terminal", "n1", 4, placement("n1", 4, 0))
	terminal.Status.Phase = v1.PodFailed
	deleting := bound(t, "deleting", "n1", 2, placement("n1", 2, 0))
	now := metav1.NewTime(testutil.Now)
	deleting.DeletionTimestamp = &now
	cpuOnly := testutil.Pod("cpu-only")
	cpuOnly.Spec.NodeName = "n1"
	return map[string]*v1.Pod{
		"consistent":            bound(t, "consistent", "n1", 10, placement("n1", 10, 0)),
		"sidecars and init":     sidecars,
		"gpu models annotation": models,
		"reconciled":            reconciled,
		"forged allocation":     forgedAlloc,
		"inconsistent":          bound(t, "inconsistent", "n1", 10, placement("n1", 16, 0)),
		"another node's":        bound(t, "elsewhere", "n1", 10, placement("n2", 10, 0)),
		"unreadable":            unreadable,
		"terminal":              terminal,
		"deleting":              deleting,
		"no placement":          bound(t, "unplaced", "n1", 4, nil),
		"cpu-only":              cpuOnly,
	}
}

// A Pod holds what the cache and bind read of the full pod, as the api
// package reads it from the v1.Pod, and nothing of the rest.
func TestNewPod(t *testing.T) {
	for name, full := range podCases(t) {
		t.Run(name, func(t *testing.T) {
			full := cluttered(full)
			raw, has := full.Annotations[api.AnnotationPlacement]
			want := cache.PodView{
				Key: full.Namespace + "/" + full.Name, Namespace: full.Namespace, Name: full.Name, ResourceVersion: full.ResourceVersion,
				UID: full.UID, Deleting: full.DeletionTimestamp != nil, Node: full.Spec.NodeName, Terminal: api.IsTerminal(full),
				Placed: has && !api.IsTerminal(full),
			}
			if want.Placed {
				pl, err := api.ParsePlacement(raw)
				var req *api.PodRequest
				if err == nil {
					req, err = api.ParsePodRequest(full)
				}
				if err == nil {
					err = pl.ConsistentWith(req, full.Spec.NodeName)
				}
				if err == nil {
					want.Placement, want.Request, want.Charged = pl, req, true
					if a, ok := full.Annotations[api.AnnotationAllocated]; ok {
						alloc, err := api.ParseAllocation(a)
						want.Reconcile = err == nil && alloc.Equal(pl)
					}
				}
			}
			p := cache.NewPod(full)
			if diff := cmp.Diff(want, cache.ViewPod(p)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// What the informer's store and its handlers use.
			if key, err := toolscache.MetaNamespaceKeyFunc(p); err != nil || key != want.Key {
				t.Errorf("key = %q, %v; want %q", key, err, want.Key)
			}
			m, err := meta.Accessor(p)
			if err != nil || m.GetResourceVersion() != full.ResourceVersion || m.GetUID() != full.UID {
				t.Errorf("meta.Accessor = %v, %v", m, err)
			}
			if m.GetLabels() != nil || m.GetAnnotations() != nil || m.GetManagedFields() != nil {
				t.Errorf("the Pod kept metadata nothing reads: %+v", p.ObjectMeta)
			}
			var _ runtime.Object = p
			if diff := cmp.Diff(cache.ViewPod(p), cache.ViewPod(p.DeepCopyObject().(*cache.Pod))); diff != "" {
				t.Errorf("DeepCopyObject (-orig +copy):\n%s", diff)
			}
		})
	}
}

// The cache built from the informer's transformed pods (cache.Pod objects,
// as a store copies them, tombstones included) is the cache built from the
// full pods.
func TestCacheFromTransformedPods(t *testing.T) {
	cases := podCases(t)
	full, transformed := nodeCache(t, 2), nodeCache(t, 2)
	for _, p := range cases {
		p = cluttered(p)
		full.OnPod(p)
		obj, err := cache.TransformPod(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := cache.TransformPod(obj) // an informer may transform twice
		if err != nil || again != obj {
			t.Fatalf("TransformPod of a Pod = %v, %v; want it unchanged", again, err)
		}
		transformed.OnPod(obj.(runtime.Object).DeepCopyObject())
	}
	type state struct {
		Free               map[string][]int64
		Assumed, Confirmed int
	}
	view := func(c *cache.Cache) state {
		a, cf := c.Stats()
		return state{Free: testutil.FreeSlices(c), Assumed: a, Confirmed: cf}
	}
	if diff := cmp.Diff(view(full), view(transformed)); diff != "" {
		t.Errorf("(-from full pods +from transformed pods):\n%s", diff)
	}
	if got := view(transformed); got.Confirmed == 0 {
		t.Fatalf("nothing charged: %+v", got)
	}
	// A deletion the informer missed arrives as a tombstone of the
	// transformed object.
	for _, p := range cases {
		obj, _ := cache.TransformPod(p)
		for _, o := range []any{obj, p} {
			got, ok := cache.PodOf(toolscache.DeletedFinalStateUnknown{Key: p.Namespace + "/" + p.Name, Obj: o})
			if !ok || got.UID != p.UID {
				t.Errorf("tombstone of %T %s: %v, %v", o, p.Name, got, ok)
			}
		}
	}
}
