package extender

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// Pods of a profile are placed with that profile's policy.
func TestPolicyPerProfile(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := cache.New(logger, 1024, 0)
	for _, n := range []*v1.Node{testutil.GPUNode(t, "n1", 1, "A100", 40, 48), testutil.GPUNode(t, "n2", 1, "A100", 40, 48)} {
		c.SetNode(n.Name, n.Annotations["gpuslice.io/inventory"])
	}
	if _, _, err := testutil.Assume(t, c, "half", "n2", testutil.Request(20)); err != nil {
		t.Fatal(err)
	}
	ps, err := NewPolicies(allocator.PolicyBinpack, map[string]string{"spreader": allocator.PolicySpread})
	if err != nil {
		t.Fatal(err)
	}
	ext := NewExtender(c, ps, nil, nil, testingclock.NewFakePassiveClock(testutil.Now), DefaultPendingLimits())
	for _, tc := range []struct{ scheduler, want string }{{"default-scheduler", "n2"}, {"spreader", "n1"}} {
		p := testutil.Pod("p-"+tc.scheduler, testutil.Container("c", 4, 0, 0))
		p.Spec.SchedulerName = tc.scheduler
		ext.Filter(t.Context(), argsFor(p, "n1", "n2"))
		got, err := ext.Prioritize(t.Context(), argsFor(p, "n1", "n2"))
		if err != nil {
			t.Fatal(err)
		}
		best := got[0]
		for _, h := range got {
			if h.Score > best.Score {
				best = h
			}
		}
		if best.Host != tc.want {
			t.Errorf("profile %s: best node %s (%v), want %s", tc.scheduler, best.Host, got, tc.want)
		}
	}
}
