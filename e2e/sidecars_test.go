package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// TestSidecars is issue 9's class 4 (pods with a GPU sidecar can never
// start). A pod with a restartable init container (a sidecar) asking for 8
// slices and an app container asking for 8 is placed by kube-scheduler and
// the extender, and admitted through kubelet's device manager: the
// placement marks the sidecar init, both containers get the GPUs their
// allocation names, and the pod is charged the sum (the sidecar runs beside
// the app), so 3-slice pods fill exactly the room that is left and no more.
func TestSidecars(t *testing.T) {
	c, d := startDPCluster(t)
	always := corev1.ContainerRestartPolicyAlways
	p := d.pod("with-sidecar", ctr{name: "sidecar", init: true, mem: 8}, ctr{name: "main", mem: 8})
	p.Spec.InitContainers[0].RestartPolicy = &always
	d.create([]*corev1.Pod{p}, 1)
	bound := d.waitBound(time.Minute, "with-sidecar")["with-sidecar"]
	pl, err := api.ParsePlacement(bound.Annotations[api.AnnotationPlacement])
	if err != nil {
		t.Fatal(err)
	}
	if sc := pl.Container("sidecar", true); sc == nil || len(sc.Devices) != 1 {
		t.Fatalf("placement %+v: want the sidecar recorded as an init container with one GPU", pl.Containers)
	}
	d.admitChecked("with-sidecar")

	// What is left per GPU, by the sum rule.
	l := d.invariant(d.ctx, nil)
	slicesPerGPU := int64(dpMemMiB) / c.SliceMiB
	fit := 0
	for _, g := range d.inv[d.node].GPUs {
		fit += int((slicesPerGPU - l.used[g.UUID].slices) / 3)
	}
	t.Logf("sidecar pod holds %+v; %d 3-slice pods fit beside it", l.used, fit)
	var fill []*corev1.Pod
	for i := range fit + 2 {
		fill = append(fill, d.one(fmt.Sprintf("fill-%d", i), 3, 0, 0))
	}
	d.create(fill, 4)
	d.poll("fill pods scheduled or unschedulable", 200*time.Millisecond, 2*time.Minute, func(ctx context.Context) (bool, error) {
		ps, err := d.list(ctx)
		if err != nil {
			return false, err
		}
		d.check(ctx, ps)
		d.invariant(ctx, map[types.UID]string{})
		bound, unsched := 0, 0
		for i := range ps {
			if ps[i].Name == "with-sidecar" {
				continue
			}
			if ps[i].Spec.NodeName != "" {
				bound++
			} else if cond := scheduledCondition(&ps[i]); cond != nil && cond.Reason == corev1.PodReasonUnschedulable {
				unsched++
			}
		}
		return bound+unsched == len(fill), fmt.Errorf("%d bound, %d unschedulable of %d", bound, unsched, len(fill))
	})
	ps, err := d.list(d.ctx)
	if err != nil {
		t.Fatal(err)
	}
	bound2 := 0
	for _, p := range ps {
		if p.Name != "with-sidecar" && p.Spec.NodeName != "" {
			bound2++
		}
	}
	if bound2 != fit {
		t.Fatalf("%d 3-slice pods bound beside the sidecar pod, want exactly %d", bound2, fit)
	}
}
