package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/e2e/harness"
)

// Sizes of TestRestartUnderBurst: 3-slice pods on T4x4 nodes (16-slice GPUs:
// 5 pods a GPU, 20 a node, although the node totals admit 21), 45 nodes for
// 900 pods, a burst of 1,000 so that 100 stay pending; and 2,500 pods that
// no scheduler takes, each with a 16 KiB annotation, so that the extender's
// pod list (40 MB) takes a while after each restart.
const (
	rbNodes      = 45
	rbPerPod     = 3
	rbPerNode    = 4 * (16 / rbPerPod)
	rbCapacity   = rbNodes * rbPerNode // 900
	rbBurst      = 1000
	rbRuns       = 5
	rbFiller     = 2500
	rbFillerKiB  = 16
	rbNoSchedule = "gpuslice-e2e-nobody" // a scheduler name nobody serves
)

// TestRestartUnderBurst is issue 9's class 1 (serving before the caches are
// loaded). In each of five runs a burst of 1,000 GPU pods is created at once
// and the extender is SIGKILLed twice while kube-scheduler places it
// (after 15% and after 50% of what fits is bound), and started again at
// once, so kube-scheduler calls it while its pod informer is still listing
// the cluster's (slow to list) pods. At every poll, from the API server: no
// GPU is over-committed and every bound pod has a valid placement. After
// the burst settles exactly the 900 that fit are bound and 100 are pending
// as unschedulable; deleting 100 bound pods lets exactly those 100 bind.
func TestRestartUnderBurst(t *testing.T) {
	c := startCluster(t, harness.Options{})
	fillCluster(t, c, rbFiller, rbFillerKiB)
	for run := range rbRuns {
		t.Run(fmt.Sprintf("run-%d", run), func(t *testing.T) {
			restartUnderBurstOnce(t, c)
		})
		if t.Failed() {
			return
		}
	}
}

// fillCluster creates n pods that no scheduler takes, with kib KiB of
// annotation each, in their own namespace.
func fillCluster(t *testing.T, c *harness.Cluster, n, kib int) {
	t.Helper()
	begin := time.Now()
	e := newEnv(t, c)
	pad := strings.Repeat("x", kib<<10)
	var pods []*corev1.Pod
	for i := range n {
		p := e.one(fmt.Sprintf("filler-%04d", i), 0, 0, 0)
		p.Spec.SchedulerName = rbNoSchedule
		p.Annotations = map[string]string{"e2e.gpuslice.io/padding": pad}
		pods = append(pods, p)
	}
	e.create(pods, 50)
	t.Logf("created %d filler pods (%d KiB annotation each) in %v", n, kib, time.Since(begin).Round(time.Millisecond))
}

func restartUnderBurstOnce(t *testing.T, c *harness.Cluster) {
	shapes := make([]harness.Shape, rbNodes)
	for i := range shapes {
		shapes[i] = harness.T4x4()
	}
	e := newEnv(t, c, shapes...)
	begin := time.Now()
	pods := e.ones("b-%04d", rbBurst, rbPerPod)
	created := e.createAsync(pods, 50)

	// ready carries the result of waiting for a restarted extender.
	ready := make(chan error, 1)
	restart := func(kill, bound int) {
		if err := c.KillExtender(); err != nil {
			t.Fatal(err)
		}
		if err := c.LaunchExtender(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: extender SIGKILLed with %d pods bound and started again", kill, bound)
		go func() { ready <- c.WaitExtenderReady(e.ctx) }()
	}
	kills := []int{rbCapacity * 15 / 100, rbCapacity / 2}
	killed, readyRestarts := 0, 0
	var counts string
	e.poll("burst settled after two extender restarts", 300*time.Millisecond, 5*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("restarted extender: %v", err)
			}
			readyRestarts++
		default:
		}
		ps, err := e.listChecked(ctx)
		if err != nil {
			return false, err
		}
		bound, unsched := 0, 0
		for i := range ps {
			if ps[i].Spec.NodeName != "" {
				bound++
			} else if cond := scheduledCondition(&ps[i]); cond != nil && cond.Reason == corev1.PodReasonUnschedulable {
				unsched++
			}
		}
		counts = fmt.Sprintf("%d created, %d bound, %d unschedulable", len(ps), bound, unsched)
		// The second kill waits until the first restart is ready, so
		// that each restart has its own window.
		if killed < len(kills) && bound >= kills[killed] && readyRestarts == killed {
			killed++
			restart(killed, bound)
		}
		if killed < len(kills) || readyRestarts < len(kills) {
			return false, fmt.Errorf("%s; %d of %d kills, %d restarts ready", counts, killed, len(kills), readyRestarts)
		}
		return bound == rbCapacity && unsched == rbBurst-rbCapacity, fmt.Errorf("%s", counts)
	})
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if killed < 2 {
		t.Fatalf("the burst settled before the extender was killed twice (%s)", counts)
	}
	t.Logf("burst settled in %v: %s", time.Since(begin).Round(time.Millisecond), counts)

	// Pending pods are schedulable later: free the room of 100 and they
	// take it, with no over-commit on the way.
	ps, err := e.list(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victims, pending []string
	for _, p := range ps {
		switch {
		case p.Spec.NodeName == "":
			pending = append(pending, p.Name)
		case len(victims) < rbBurst-rbCapacity:
			victims = append(victims, p.Name)
		}
	}
	zero := int64(0)
	for _, n := range victims {
		if err := c.Client.CoreV1().Pods(e.ns).Delete(e.ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
	}
	e.poll(fmt.Sprintf("%d pending pods bound after %d deletions", len(pending), len(victims)), 300*time.Millisecond, 3*time.Minute, func(ctx context.Context) (bool, error) {
		ps, err := e.listChecked(ctx)
		if err != nil {
			return false, err
		}
		bound := 0
		for i := range ps {
			if ps[i].Spec.NodeName != "" {
				bound++
			}
		}
		return len(ps) == rbCapacity && bound == rbCapacity, fmt.Errorf("%d pods, %d bound", len(ps), bound)
	})
	t.Logf("run done in %v", time.Since(begin).Round(time.Millisecond))
}
