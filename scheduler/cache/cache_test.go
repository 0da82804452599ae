package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func newCache(t *testing.T, ttl time.Duration, opts ...cache.Option) *cache.Cache {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	return cache.New(logger, 1024, ttl, append([]cache.Option{cache.WithClock(testingclock.NewFakeClock(testutil.Now))}, opts...)...)
}

// nodeCache returns a cache with a one-minute TTL holding node n1 with
// gpus T4s of 16 slices and 4 slots each.
func nodeCache(t *testing.T, gpus int) *cache.Cache {
	t.Helper()
	c := newCache(t, time.Minute)
	c.SetNode("n1", testutil.Inventory(t, "n1", gpus, "T4", 16, 4))
	return c
}

// bound returns pod name (one container "c" of slices slices) bound to
// node with the placement annotation pl.
func bound(t *testing.T, name, node string, slices int64, pl *api.Placement) *v1.Pod {
	t.Helper()
	p := testutil.Pod(name, testutil.Container("c", slices, 0, 0))
	p.Spec.NodeName = node
	if pl != nil {
		s, err := pl.Encode()
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations = map[string]string{api.AnnotationPlacement: s}
	}
	return p
}

// placement returns a placement of container "c" with slices slices on the
// GPUs of node (by index).
func placement(node string, slices int64, gpus ...int) *api.Placement {
	pl := &api.Placement{Version: api.PlacementVersion, Node: node, AssignedAt: testutil.Now, Containers: []api.ContainerPlacement{{Name: "c"}}}
	for _, g := range gpus {
		pl.Containers[0].Devices = append(pl.Containers[0].Devices,
			api.DeviceShare{UUID: testutil.GPUUUID(node, g), Index: g, Slices: slices, Slots: 1})
	}
	return pl
}

func TestCacheAssumeForgetConfirm(t *testing.T) {
	c := nodeCache(t, 2)
	full := map[string][]int64{"n1": {16, 16}}
	if diff := cmp.Diff(full, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("initial (-want +got):\n%s", diff)
	}
	pl, gen, err := testutil.Assume(t, c, "uid-p1", "n1", testutil.Request(10))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after assume (-want +got):\n%s", diff)
	}
	if _, _, err := testutil.Assume(t, c, "uid-p1", "n1", testutil.Request(1)); !errors.Is(err, cache.ErrAlreadyPlaced) {
		t.Fatalf("second assume of the same pod: err = %v, want ErrAlreadyPlaced", err)
	}
	// A second pod of 10 goes to GPU 1; a third does not fit, and a failed
	// assume changes nothing.
	_, gen2, err := testutil.Assume(t, c, "uid-p2", "n1", testutil.Request(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := testutil.Assume(t, c, "uid-p3", "n1", testutil.Request(10)); err == nil {
		t.Fatal("third pod of 10 slices fit two 16-slice GPUs holding 10 each")
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after failed assume (-want +got):\n%s", diff)
	}
	// Forget with a stale generation is ignored; with the right one frees.
	c.Forget("uid-p2", gen2+100)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after stale forget (-want +got):\n%s", diff)
	}
	c.Forget("uid-p2", gen2)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after forget (-want +got):\n%s", diff)
	}
	// Confirmation from the informer: the same placement keeps the charge.
	c.OnPod(bound(t, "p1", "n1", 10, pl))
	if a, cf := c.Stats(); a != 0 || cf != 1 {
		t.Fatalf("stats = %d assumed, %d confirmed; want 0, 1", a, cf)
	}
	// Forget and expiry after confirmation are no-ops.
	c.Forget("uid-p1", gen)
	c.Cleanup(testutil.Now.Add(time.Hour))
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after forget of a confirmed pod (-want +got):\n%s", diff)
	}
	c.RemovePod("uid-p1")
	if diff := cmp.Diff(full, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after delete (-want +got):\n%s", diff)
	}
}

// TestCacheAssumeConflict checks Assume re-checks the shares under the
// lock: a placement chosen on a stale copy is refused with ErrConflict.
func TestCacheAssumeConflict(t *testing.T) {
	c := nodeCache(t, 1)
	req := testutil.Request(10)
	pl := placement("n1", 10, 0)
	if _, err := c.Assume("a", "default/a", pl, req, testutil.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Assume("b", "default/b", pl, req, testutil.Now); err == nil || !errors.Is(err, cache.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	// A placement inconsistent with the request is refused outright.
	if _, err := c.Assume("c", "default/c", placement("n1", 5, 0), req, testutil.Now); !errors.Is(err, api.ErrInconsistent) {
		t.Fatalf("err = %v, want ErrInconsistent", err)
	}
}

// TestCacheCleanup checks expiry on the time passed in: an assumption lives
// until its deadline (now + TTL) and not a moment less.
func TestCacheCleanup(t *testing.T) {
	c := nodeCache(t, 1)
	if _, _, err := testutil.Assume(t, c, "u1", "n1", testutil.Request(10)); err != nil {
		t.Fatal(err)
	}
	c.Cleanup(testutil.Now.Add(time.Minute - time.Nanosecond))
	if !c.HasPod("u1") {
		t.Fatal("assumption expired before its deadline")
	}
	c.Cleanup(testutil.Now.Add(time.Minute))
	if c.HasPod("u1") {
		t.Fatal("assumption outlived its deadline")
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after expiry (-want +got):\n%s", diff)
	}
}

func TestCacheNodeInventoryChanges(t *testing.T) {
	c := nodeCache(t, 2)
	c.OnPod(bound(t, "p1", "n1", 10, placement("n1", 10, 0)))
	// The device plugin marks a GPU unhealthy: the placement still counts.
	inv, _ := api.ParseInventory(testutil.Inventory(t, "n1", 2, "T4", 16, 4))
	inv.GPUs[1].Healthy = false
	s2, _ := inv.Encode()
	c.SetNode("n1", s2)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after inventory update (-want +got):\n%s", diff)
	}
	// A node whose inventory uses another slice size is not schedulable.
	inv.SliceMiB = 512
	s3, _ := inv.Encode()
	c.SetNode("n1", s3)
	if len(c.Snapshot()) != 0 {
		t.Fatal("node with a foreign slice size is schedulable")
	}
	c.SetNode("n1", s2)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after restoring the inventory (-want +got):\n%s", diff)
	}
	// Node deletion and return keep the pod's charge.
	c.DeleteNode("n1")
	c.SetNode("n1", s2)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after node delete and re-add (-want +got):\n%s", diff)
	}
}

// TestCacheVanishedGPU checks a pod on two GPUs, one of which vanishes:
// the other keeps its charge, the vanished one stays as a placeholder no
// pod is placed on, and it goes once the pod is gone.
func TestCacheVanishedGPU(t *testing.T) {
	c := nodeCache(t, 2)
	p := testutil.Pod("p1", testutil.Container("c", 20, 0, 2))
	p.Spec.NodeName = "n1"
	s, _ := placement("n1", 10, 0, 1).Encode()
	p.Annotations = map[string]string{api.AnnotationPlacement: s}
	c.OnPod(p)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("before (-want +got):\n%s", diff)
	}
	inv, _ := api.ParseInventory(testutil.Inventory(t, "n1", 2, "T4", 16, 4))
	inv.GPUs = inv.GPUs[:1]
	inv.GPUs[0].Links = nil
	s1, _ := inv.Encode()
	c.SetNode("n1", s1)
	snap := c.Snapshot()
	want := []cache.NodeFree{{Node: "n1", Free: []allocator.Units{{Slices: 6, Core: 100, Slots: 3}, {Slices: 6, Core: 100, Slots: 3}}, Placeholder: []bool{false, true}}}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Fatalf("after GPU 1 vanished (-want +got):\n%s", diff)
	}
	// A 6-slice pod fits only GPU 0; the placeholder takes nobody.
	fits := c.FitNodes([]string{"n1"}, testutil.Request(6), allocator.Binpack{})
	if fits[0].Code != allocator.Success {
		t.Fatalf("6 slices: %s", fits[0].Message())
	}
	if _, _, err := testutil.Assume(t, c, "u2", "n1", testutil.Request(6)); err != nil {
		t.Fatal(err)
	}
	if fits := c.FitNodes([]string{"n1"}, testutil.Request(6), allocator.Binpack{}); fits[0].Code == allocator.Success {
		t.Fatal("a pod was fitted on the placeholder")
	}
	// A placement naming the placeholder cannot be assumed either.
	if _, err := c.Assume("u3", "default/u3", placement("n1", 1, 1), testutil.Request(1), testutil.Now); err == nil {
		t.Fatal("assumed a share on a vanished GPU")
	}
	// Once the pod holding it is gone, the placeholder goes.
	c.RemovePod(p.UID)
	if diff := cmp.Diff(map[string][]int64{"n1": {10}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after the pod left (-want +got):\n%s", diff)
	}
}

// TestCacheChargesOnlyConsistentPlacements checks a placement is charged
// only when it agrees with the pod's own request, whatever the annotation
// claims.
func TestCacheChargesOnlyConsistentPlacements(t *testing.T) {
	tests := []struct {
		name string
		pod  func() *v1.Pod
		want []int64 // free slices of n1's two GPUs
	}{
		{name: "consistent", pod: func() *v1.Pod { return bound(t, "p", "n1", 10, placement("n1", 10, 0)) }, want: []int64{6, 16}},
		{name: "cpu-only pod with a forged placement", pod: func() *v1.Pod {
			p := bound(t, "p", "n1", 0, placement("n1", 16, 0))
			p.Spec.Containers[0].Resources = v1.ResourceRequirements{}
			return p
		}, want: []int64{16, 16}},
		{name: "share larger than the request", pod: func() *v1.Pod { return bound(t, "p", "n1", 10, placement("n1", 16, 0)) }, want: []int64{16, 16}},
		{name: "share smaller than the request", pod: func() *v1.Pod { return bound(t, "p", "n1", 10, placement("n1", 1, 0)) }, want: []int64{16, 16}},
		{name: "more GPUs than asked", pod: func() *v1.Pod { return bound(t, "p", "n1", 10, placement("n1", 10, 0, 1)) }, want: []int64{16, 16}},
		{name: "another node's placement", pod: func() *v1.Pod { return bound(t, "p", "n1", 10, placement("n2", 10, 0)) }, want: []int64{16, 16}},
		{name: "unknown container", pod: func() *v1.Pod {
			pl := placement("n1", 10, 0)
			pl.Containers[0].Name = "other"
			return bound(t, "p", "n1", 10, pl)
		}, want: []int64{16, 16}},
		{name: "unreadable annotation", pod: func() *v1.Pod {
			p := bound(t, "p", "n1", 10, nil)
			p.Annotations = map[string]string{api.AnnotationPlacement: "{"}
			return p
		}, want: []int64{16, 16}},
		{name: "terminal pod", pod: func() *v1.Pod {
			p := bound(t, "p", "n1", 10, placement("n1", 10, 0))
			p.Status.Phase = v1.PodSucceeded
			return p
		}, want: []int64{16, 16}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := nodeCache(t, 2)
			c.OnPod(tc.pod())
			if diff := cmp.Diff(map[string][]int64{"n1": tc.want}, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestCacheIgnoresForgedUpdates checks a bound pod's charges cannot be
// moved or shrunk by editing its annotations; only the device plugin's
// reconcile (placement equal to the allocation record) moves them, and
// then the old shares stay charged for the grace period.
func TestCacheIgnoresForgedUpdates(t *testing.T) {
	orig := placement("n1", 10, 0)
	moved := placement("n1", 10, 1)
	encode := func(pl *api.Placement) string {
		s, err := pl.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name        string
		annotations map[string]string
		want        []int64 // free slices after the update
		afterGrace  []int64 // free slices once the grace period is over
	}{
		{name: "moved to another GPU", annotations: map[string]string{api.AnnotationPlacement: encode(moved)}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "named a GPU that does not exist", annotations: map[string]string{api.AnnotationPlacement: encode(placement("n1", 10, 7))}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "shrunk", annotations: map[string]string{api.AnnotationPlacement: encode(placement("n1", 1, 0))}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "emptied", annotations: map[string]string{api.AnnotationPlacement: encode(&api.Placement{Version: api.PlacementVersion, Node: "n1"})}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "removed", annotations: map[string]string{}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "moved with a forged allocation of other shares", annotations: map[string]string{
			api.AnnotationPlacement: encode(moved), api.AnnotationAllocated: encode(orig)}, want: []int64{6, 16}, afterGrace: []int64{6, 16}},
		{name: "device plugin reconcile", annotations: map[string]string{
			api.AnnotationPlacement: encode(moved), api.AnnotationAllocated: encode(moved)}, want: []int64{6, 6}, afterGrace: []int64{16, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, time.Minute, cache.WithGrace(30*time.Second))
			c.SetNode("n1", testutil.Inventory(t, "n1", 2, "T4", 16, 4))
			p := bound(t, "p", "n1", 10, orig)
			c.OnPod(p)
			q := p.DeepCopy()
			q.Annotations = tc.annotations
			c.OnPod(q)
			if diff := cmp.Diff(map[string][]int64{"n1": tc.want}, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("after the update (-want +got):\n%s", diff)
			}
			// No window: the old shares are still charged just before the
			// grace period ends, and freed at its end.
			c.Cleanup(testutil.Now.Add(30*time.Second - time.Nanosecond))
			if diff := cmp.Diff(map[string][]int64{"n1": tc.want}, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("just before the grace period ends (-want +got):\n%s", diff)
			}
			c.Cleanup(testutil.Now.Add(30 * time.Second))
			if diff := cmp.Diff(map[string][]int64{"n1": tc.afterGrace}, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("after the grace period (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCacheSidecarCharge checks the cache charges a sidecar for the pod's
// life, from the pod's spec, with the placement's real init flags.
func TestCacheSidecarCharge(t *testing.T) {
	c := nodeCache(t, 1)
	always := v1.ContainerRestartPolicyAlways
	p := testutil.Pod("p", testutil.Container("app", 4, 0, 0))
	side := testutil.Container("side", 2, 0, 0)
	side.RestartPolicy = &always
	p.Spec.InitContainers = []v1.Container{side, testutil.Container("init", 8, 0, 0)}
	p.Spec.NodeName = "n1"
	dev := func(slices int64) []api.DeviceShare {
		return []api.DeviceShare{{UUID: testutil.GPUUUID("n1", 0), Slices: slices, Slots: 1}}
	}
	pl := &api.Placement{Version: api.PlacementVersion, Node: "n1", Containers: []api.ContainerPlacement{
		{Name: "side", Init: true, Devices: dev(2)}, {Name: "init", Init: true, Devices: dev(8)}, {Name: "app", Devices: dev(4)},
	}}
	s, _ := pl.Encode()
	p.Annotations = map[string]string{api.AnnotationPlacement: s}
	c.OnPod(p)
	// max(app 4 + sidecar 2, sidecar 2 + init 8) = 10.
	if diff := cmp.Diff(map[string][]int64{"n1": {6}}, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestCacheFreeAfterEvicting checks preemption sees the node without the
// victims' shares, and the cache itself is unchanged.
func TestCacheFreeAfterEvicting(t *testing.T) {
	c := nodeCache(t, 1)
	c.OnPod(bound(t, "p", "n1", 10, placement("n1", 10, 0)))
	n, err := c.FreeAfterEvicting("n1", []types.UID{"uid-p", "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Free(0).Slices; got != 16 {
		t.Errorf("free after evicting = %d, want 16", got)
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {6}}, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("cache changed (-want +got):\n%s", diff)
	}
	if _, err := c.FreeAfterEvicting("nope", nil); err == nil {
		t.Error("unknown node accepted")
	}
}

// TestCacheRun checks the janitor expires reservations on the injected
// clock.
func TestCacheRun(t *testing.T) {
	clk := testingclock.NewFakeClock(testutil.Now)
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Minute, cache.WithClock(clk))
	c.SetNode("n1", testutil.Inventory(t, "n1", 1, "T4", 16, 4))
	if _, _, err := testutil.Assume(t, c, "u1", "n1", testutil.Request(10)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	testutil.Poll(t, "the janitor's ticker", clk.HasWaiters)
	clk.Step(time.Minute)
	testutil.Poll(t, "the assumption to expire", func() bool { return !c.HasPod("u1") })
	cancel()
	<-done
}
