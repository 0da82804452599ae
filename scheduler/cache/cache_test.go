package cache_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func TestCacheAssumeForgetConfirm(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Minute)
	t.Cleanup(c.Stop)
	c.SetNode("n1", testutil.Inventory(t, "n1", 2, "T4", 16, 4))
	full := map[string][]int64{"n1": {16, 16}}
	if diff := cmp.Diff(full, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("initial (-want +got):\n%s", diff)
	}

	pl, gen, err := c.Assume("u1", "default/p1", "n1", testutil.Now, testutil.Binpack(testutil.Request(10)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after assume (-want +got):\n%s", diff)
	}
	if _, _, err := c.Assume("u1", "default/p1", "n1", testutil.Now, testutil.Binpack(testutil.Request(1))); err != cache.ErrAlreadyPlaced {
		t.Fatalf("second assume of the same pod: err = %v, want ErrAlreadyPlaced", err)
	}
	// A second pod of 10 no longer fits GPU 0 and goes to GPU 1; a third
	// does not fit at all, and a failed assume changes nothing.
	if _, _, err := c.Assume("u2", "default/p2", "n1", testutil.Now, testutil.Binpack(testutil.Request(10))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Assume("u3", "default/p3", "n1", testutil.Now, testutil.Binpack(testutil.Request(10))); err == nil {
		t.Fatal("third pod of 10 slices fit two 16-slice GPUs holding 10 each")
	}
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after failed assume (-want +got):\n%s", diff)
	}

	// Forget with a stale generation is ignored; with the right one frees.
	c.Forget("u2", 999)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after stale forget (-want +got):\n%s", diff)
	}
	c.Forget("u2", gen+1)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after forget (-want +got):\n%s", diff)
	}

	// Confirmation from the informer: the same placement keeps the charge.
	s, err := pl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c.AddPod("u1", "default/p1", "n1", s)
	if a, cf := c.Stats(); a != 0 || cf != 1 {
		t.Fatalf("stats = %d assumed, %d confirmed; want 0, 1", a, cf)
	}
	// Forget after confirmation is a no-op.
	c.Forget("u1", gen)
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after forget of a confirmed pod (-want +got):\n%s", diff)
	}
	c.RemovePod("u1")
	if diff := cmp.Diff(full, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after delete (-want +got):\n%s", diff)
	}
}

func TestCacheAssumptionExpires(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Millisecond)
	t.Cleanup(c.Stop)
	c.SetNode("n1", testutil.Inventory(t, "n1", 1, "T4", 16, 4))
	if _, _, err := c.Assume("u1", "default/p1", "n1", testutil.Now, testutil.Binpack(testutil.Request(10))); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "the unconfirmed assumption to expire", func() bool {
		c.ExpireReservations()
		return !c.HasPod("u1")
	})
	if diff := cmp.Diff(map[string][]int64{"n1": {16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("after expiry (-want +got):\n%s", diff)
	}
}

func TestCacheConfirmedDoesNotExpire(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Millisecond)
	t.Cleanup(c.Stop)
	c.SetNode("n1", testutil.Inventory(t, "n1", 1, "T4", 16, 4))
	pl, _, err := c.Assume("u1", "default/p1", "n1", testutil.Now, testutil.Binpack(testutil.Request(10)))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := pl.Encode()
	c.AddPod("u1", "default/p1", "n1", s)
	// Re-assume another pod and wait for its expiry: by then the janitor
	// has had every chance to expire u1 too.
	if _, _, err := c.Assume("u2", "default/p2", "n1", testutil.Now, testutil.Binpack(testutil.Request(1))); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "u2 to expire", func() bool { c.ExpireReservations(); return !c.HasPod("u2") })
	if !c.HasPod("u1") {
		t.Fatal("a confirmed placement expired")
	}
}

func TestCacheNodeInventoryChanges(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, time.Minute)
	t.Cleanup(c.Stop)
	c.SetNode("n1", testutil.Inventory(t, "n1", 2, "T4", 16, 4))
	pl, _, err := c.Assume("u1", "default/p1", "n1", testutil.Now, testutil.Binpack(testutil.Request(10)))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := pl.Encode()
	c.AddPod("u1", "default/p1", "n1", s)
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
