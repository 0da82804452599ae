package cache_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// TestCacheWholeInstances: on a GPU of two 4 GiB vGPU instances, two pods
// of 3 GiB each take an instance and fill it, and a third is refused; a
// cache rebuilt from the pods' placement annotations (an extender restart)
// charges the same whole instances.
func TestCacheWholeInstances(t *testing.T) {
	inv := testutil.InstanceInventory(t, "v", 1, api.IsolationVGPU, 8, 4)
	vm := func() *allocator.PodRequest {
		r := testutil.Request(3)
		r.Sandbox = api.IsolationVGPU
		return r
	}
	full := []allocator.Units{{}}
	c := newCache(t, time.Minute)
	c.SetNode("v", inv)
	var pods []*v1.Pod
	for _, name := range []string{"a", "b"} {
		pl, _, err := testutil.Assume(t, c, types.UID("uid-"+name), "v", vm())
		if err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
		if got := pl.Containers[0].Devices[0].Slices; got != 3 {
			t.Errorf("pod %s: placement records %d slices, want the 3 asked", name, got)
		}
		p := bound(t, name, "v", 3, pl)
		p.Spec.RuntimeClassName = ptr("kata-vgpu")
		pods = append(pods, p)
	}
	if diff := cmp.Diff(full, c.Snapshot()[0].Free); diff != "" {
		t.Errorf("free after two pods (-want +got):\n%s", diff)
	}
	if _, _, err := testutil.Assume(t, c, "uid-c", "v", vm()); err == nil {
		t.Error("a third pod fits, want it refused")
	}

	rebuilt := newCache(t, time.Minute)
	rebuilt.SetNode("v", inv)
	for _, p := range pods {
		rebuilt.OnPod(p)
	}
	if diff := cmp.Diff(full, rebuilt.Snapshot()[0].Free); diff != "" {
		t.Errorf("free after the rebuild (-want +got):\n%s", diff)
	}
	if _, _, err := testutil.Assume(t, rebuilt, "uid-c", "v", vm()); err == nil {
		t.Error("a third pod fits after the rebuild, want it refused")
	}
	// Freeing one pod frees its whole instance.
	rebuilt.RemovePod("uid-a")
	if diff := cmp.Diff([]allocator.Units{{Slices: 4, Core: 50, Slots: 1}}, rebuilt.Snapshot()[0].Free); diff != "" {
		t.Errorf("free after removing a pod (-want +got):\n%s", diff)
	}
}

// TestCacheAssumeIsolation: Assume refuses a placement on GPUs of an
// isolation mode the pod may not use, whoever chose it.
func TestCacheAssumeIsolation(t *testing.T) {
	c := newCache(t, time.Minute)
	c.SetNode("v", testutil.InstanceInventory(t, "v", 1, api.IsolationVGPU, 8, 4))
	c.SetNode("m", testutil.Inventory(t, "m", 1, "T4", 16, 4))
	for _, tc := range []struct {
		name    string
		node    string
		sandbox api.IsolationMode
		ok      bool
	}{
		{"container pod on vgpu", "v", "", false},
		{"vgpu pod on vgpu", "v", api.IsolationVGPU, true},
		{"vgpu pod on a shared GPU", "m", api.IsolationVGPU, false},
		{"passthrough pod on vgpu", "v", api.IsolationPassthrough, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testutil.Request(3)
			r.Sandbox = tc.sandbox
			pl := placement(tc.node, 3, 0)
			_, err := c.Assume(types.UID("uid-"+tc.name), "default/x", pl, r, testutil.Now)
			if (err == nil) != tc.ok {
				t.Errorf("Assume = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
