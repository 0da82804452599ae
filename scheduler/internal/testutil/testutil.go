// Package testutil holds the fixtures the scheduler packages' tests share:
// GPU inventories, nodes, pods, a poll with a deadline and an HTTP request.
package testutil

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Now is the fixed time the tests' fake clocks start at.
var Now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Inventory returns an inventory annotation of n GPUs of memGiB each (1 GiB
// slices), with slots slots, all NVLinked.
func Inventory(t testing.TB, node string, n int, model string, memGiB, slots int64) string {
	t.Helper()
	inv := api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024}
	for i := range n {
		g := api.GPU{Index: i, UUID: GPUUUID(node, i), Model: model, MemoryMiB: memGiB * 1024, Slices: memGiB, Slots: slots, CoreUnits: 100, NUMANode: i / 4, Healthy: true, Isolation: api.IsolationNone}
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

// InstanceInventory returns an inventory annotation of n GPUs of memGiB
// each (1 GiB slices) of isolation mode m (vgpu or passthrough), cut into
// instances of instGiB (passthrough: instGiB = memGiB), all NVLinked.
func InstanceInventory(t testing.TB, node string, n int, m api.IsolationMode, memGiB, instGiB int64) string {
	t.Helper()
	inv := api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024}
	for i := range n {
		slots := memGiB / instGiB
		g := api.GPU{Index: i, UUID: GPUUUID(node, i), Model: "T4", MemoryMiB: memGiB * 1024, Slices: slots * instGiB, Slots: slots,
			CoreUnits: 100, NUMANode: 0, Healthy: true, Isolation: m, InstanceMiB: instGiB * 1024}
		if m == api.IsolationVGPU {
			g.VGPUType = fmt.Sprintf("GRID T4-%dQ", instGiB)
		}
		for j := range n {
			if j != i {
				g.Links = append(g.Links, api.Link{Peer: j, Type: api.LinkNVLink, NVLinks: 12})
			}
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// InstanceNode returns a node publishing InstanceInventory(t, name, n, m,
// memGiB, instGiB).
func InstanceNode(t testing.TB, name string, n int, m api.IsolationMode, memGiB, instGiB int64) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{api.AnnotationInventory: InstanceInventory(t, name, n, m, memGiB, instGiB)}}}
}

// GPUUUID is the UUID Inventory gives GPU i of node.
func GPUUUID(node string, i int) string { return fmt.Sprintf("GPU-%s-%d", node, i) }

// GPUNode returns a node publishing Inventory(t, name, n, model, memGiB, slots).
func GPUNode(t testing.TB, name string, n int, model string, memGiB, slots int64) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{api.AnnotationInventory: Inventory(t, name, n, model, memGiB, slots)}}}
}

// Container returns a container with the given gpuslice limits (0 = absent).
func Container(name string, mem, core, count int64) v1.Container {
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

// Pod returns an unbound pod default/name with UID "uid-<name>".
func Pod(name string, cs ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       v1.PodSpec{Containers: cs},
	}
}

// FreeSlices returns the free slices of every GPU of every node of c.
func FreeSlices(c *cache.Cache) map[string][]int64 {
	out := map[string][]int64{}
	for _, nf := range c.Snapshot() {
		for _, u := range nf.Free {
			out[nf.Node] = append(out[nf.Node], u.Slices)
		}
	}
	return out
}

// Poll waits for cond with a deadline and fails the test when it passes.
func Poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Request returns a pod request of one container of slices slices.
func Request(slices int64) *allocator.PodRequest {
	return &allocator.PodRequest{Containers: []allocator.ContainerRequest{{Name: "c", Slices: slices}}}
}

// Assume chooses r's GPUs on node with the binpack policy on a copy of
// the cache's node and assumes them at Now, as the extender's bind does.
func Assume(t testing.TB, c *cache.Cache, uid types.UID, node string, r *allocator.PodRequest) (*api.Placement, uint64, error) {
	t.Helper()
	n, err := c.Node(node)
	if err != nil {
		return nil, 0, err
	}
	a, st := allocator.Fit(n, r, allocator.Binpack{})
	if !st.IsSuccess() {
		return nil, 0, fmt.Errorf("does not fit: %s", st.Message())
	}
	pl := a.Placement(n, Now)
	gen, err := c.Assume(uid, "default/"+string(uid), pl, r, Now)
	return pl, gen, err
}
