package cache_test

import (
	"testing"
	"time"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// FuzzForgedAnnotations writes arbitrary gpuslice.io/placement,
// gpuslice.io/allocated and gpuslice.io/inventory values, as someone else
// could on a pod or node, through the informer path (OnPod, SetNode). The
// cache must not panic, must never free a share (the free total never
// rises above what the real placement leaves, now or after the grace
// period), and a CPU-only pod with forged annotations must never take one.
// A garbage inventory may make the node unusable while it lasts, but once
// the device plugin puts the real one back the pod's charge is intact.
func FuzzForgedAnnotations(f *testing.F) {
	orig := placement("n1", 10, 0)
	s, err := orig.Encode()
	if err != nil {
		f.Fatal(err)
	}
	moved, err := placement("n1", 10, 1).Encode()
	if err != nil {
		f.Fatal(err)
	}
	inv := testutil.Inventory(f, "n1", 2, "T4", 16, 4)
	for _, seed := range [][3]string{
		{s, s, inv}, {moved, moved, inv}, {moved, s, "{"}, {"", "", ""}, {"{", "null", `{"version":"gpuslice.io/v1"}`},
		{`{"version":"gpuslice.io/v1","node":"n1","containers":[{"name":"c","devices":[{"uuid":"GPU-n1-0","slices":-10}]}]}`, "[]", inv},
		{`{"version":"gpuslice.io/v1","node":"n1","containers":[{"name":"c","devices":[{"uuid":"GPU-n1-0","slices":1e300}]}]}`, s, inv},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	total := func(c *cache.Cache) int64 {
		var n int64
		for _, gpus := range testutil.FreeSlices(c) {
			for _, v := range gpus {
				n += v
			}
		}
		return n
	}
	f.Fuzz(func(t *testing.T, placementAnn, allocatedAnn, inventoryAnn string) {
		c := newCache(t, time.Minute, cache.WithGrace(30*time.Second))
		c.SetNode("n1", inv)
		p := bound(t, "p", "n1", 10, orig)
		c.OnPod(p)
		want := total(c) // 6 + 16

		forged := p.DeepCopy()
		forged.Annotations = map[string]string{api.AnnotationPlacement: placementAnn, api.AnnotationAllocated: allocatedAnn}
		c.OnPod(forged)
		if got := total(c); got > want {
			t.Fatalf("forged update freed %d slices: %v", got-want, testutil.FreeSlices(c))
		}
		c.Cleanup(testutil.Now.Add(time.Minute))
		if got := total(c); got > want {
			t.Fatalf("forged update freed %d slices after the grace period: %v", got-want, testutil.FreeSlices(c))
		}

		cpu := testutil.Pod("cpu")
		cpu.UID = "uid-cpu"
		cpu.Spec.NodeName = "n1"
		cpu.Annotations = map[string]string{api.AnnotationPlacement: placementAnn, api.AnnotationAllocated: allocatedAnn}
		before := total(c)
		c.OnPod(cpu)
		if got := total(c); got != before {
			t.Fatalf("a CPU-only pod with forged annotations changed the free slices by %d: %v", got-before, testutil.FreeSlices(c))
		}

		c.SetNode("n1", inventoryAnn)
		c.SetNode("n1", inv)
		if got := total(c); got > want {
			t.Fatalf("a forged inventory freed %d slices once the real one came back: %v", got-want, testutil.FreeSlices(c))
		}
	})
}
