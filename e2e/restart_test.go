package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// TestExtenderRestart SIGKILLs the extender while a burst is being
// scheduled and starts it again. The burst asks for more than the nodes
// have, in uniform shares, so the exact number of pods that must end up
// bound is known: afterwards every pod is either bound with a valid
// placement or pending, nothing is double-allocated, and deleting pods
// frees exactly their shares for the pending and the next pods.
func TestExtenderRestart(t *testing.T) {
	// 3-slice pods on 16-slice GPUs: 5 fit a GPU and 1 slice stays free, so
	// the per-GPU fit (the extender), not kube-scheduler's node totals
	// (64 slices fit 21 pods), decides how many pods a node takes.
	const (
		nodes     = 8 // T4x4
		perPod    = 3 // slices
		perGPU    = 16 / perPod
		capacity  = nodes * 4 * perGPU // 160 pods
		burst     = capacity + 40
		killAfter = 10 // bound pods: kill early in the burst
		deleted   = 50
		full      = capacity * perPod
	)
	c := startCluster(t, harness.Options{})
	shapes := make([]harness.Shape, nodes)
	for i := range shapes {
		shapes[i] = harness.T4x4()
	}
	e := newEnv(t, c, shapes...)

	pods := e.ones("r-%03d", burst, perPod)
	created := e.createAsync(pods, 50)

	// SIGKILL the extender as soon as killAfter pods are bound.
	bound := func(ctx context.Context) (b, u []corev1.Pod, err error) {
		ps, err := e.list(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ps {
			if p.Spec.NodeName != "" {
				b = append(b, p)
			} else {
				u = append(u, p)
			}
		}
		return b, u, nil
	}
	e.poll(fmt.Sprintf("%d pods bound", killAfter), 20*time.Millisecond, 2*time.Minute, func(ctx context.Context) (bool, error) {
		b, _, err := bound(ctx)
		return len(b) >= killAfter, err
	})
	if err := c.KillExtender(); err != nil {
		t.Fatal(err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	b, u, err := bound(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("extender killed with %d pods bound, %d not (yet)", len(b), len(u))
	e.view()

	// While the extender is down kube-scheduler cannot schedule GPU pods.
	e.poll("a scheduling attempt to fail", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		_, u, err := bound(ctx)
		return slices.ContainsFunc(u, func(p corev1.Pod) bool { return scheduledCondition(&p) != nil }), err
	})

	begin := time.Now()
	if err := c.StartExtender(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("extender restarted and ready in %v", time.Since(begin).Round(time.Millisecond))

	// Exactly capacity pods end up bound, the rest pending as unschedulable
	// after an attempt with the new extender.
	e.poll(fmt.Sprintf("%d bound and %d unschedulable", capacity, burst-capacity), 500*time.Millisecond, 3*time.Minute, func(ctx context.Context) (bool, error) {
		ps, err := e.list(ctx)
		if err != nil {
			return false, err
		}
		e.check(ctx, ps)
		b, u, err := bound(ctx)
		if err != nil {
			return false, err
		}
		unsched := 0
		for i := range u {
			if c := scheduledCondition(&u[i]); c != nil && c.Reason == corev1.PodReasonUnschedulable {
				unsched++
			}
		}
		return len(b) == capacity && unsched == burst-capacity, fmt.Errorf("%d bound, %d unschedulable of %d pending", len(b), unsched, len(u))
	})
	t.Logf("after the restart: %d bound, %d pending in %v", capacity, burst-capacity, time.Since(begin).Round(time.Millisecond))
	assertFull(t, e, full)

	// Deleting 50 bound pods frees room for 50: the 40 pending pods take it
	// and room for 10 stays free.
	b, _, err = bound(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victims []string
	for _, p := range b[:deleted] {
		victims = append(victims, p.Name)
	}
	e.deletePods(victims...)
	var rest []string
	for _, p := range pods {
		if !slices.Contains(victims, p.Name) {
			rest = append(rest, p.Name)
		}
	}
	e.waitBound(2*time.Minute, rest...)
	free := deleted - (burst - capacity)
	assertFull(t, e, full-free*perPod)

	var next []*corev1.Pod
	for i := range free {
		next = append(next, e.one(fmt.Sprintf("n-%d", i), perPod, 0, 0))
	}
	e.create(next, free)
	e.waitBound(time.Minute, names(next)...)
	assertFull(t, e, full)
	// Node totals still have room (60 of 64 slices); the extender says no.
	e.create([]*corev1.Pod{e.one("one-too-many", perPod, 0, 0)}, 1)
	e.waitFailedScheduling("one-too-many", time.Minute, string(allocator.ReasonInsufficientMemory))
	assertFull(t, e, full)
}

// scheduledCondition returns the pod's PodScheduled=False condition, or nil.
func scheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c
		}
	}
	return nil
}

// assertFull checks (with the placements) that exactly used slices are
// taken over the env's GPUs.
func assertFull(t *testing.T, e *env, used int) {
	t.Helper()
	var got int
	for _, n := range e.view().Nodes {
		for _, g := range n.GPUs {
			got += int(g.Slices.Used)
		}
	}
	if got != used {
		t.Fatalf("placements hold %d slices, want %d", got, used)
	}
}
