package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
)

// twinWindowPolls is how many polls TestTwinSwap watches the placements for
// after the later twin was admitted (at 20 ms, several reconcile periods of
// the plugin's 200 ms).
const twinWindowPolls = 100

// TestTwinSwap is issue 9's class 5 (the identical-twin swap leaves a
// window). Two GPUs of the node are taken by admitted pods; two identical
// whole-GPU pods are placed on the other two, and kubelet admits the one
// placed later first, so the device plugin hands it the earlier one's GPU
// and rewrites placements. At no poll may two placements name one GPU
// beyond its capacity, a third identical pod created right then must not be
// placed on a GPU that is still promised, and the earlier twin must still
// be admitted with the GPU its placement names.
func TestTwinSwap(t *testing.T) {
	c, d := startDPCluster(t)
	whole := int64(dpMemMiB) / c.SliceMiB
	for _, n := range []string{"other-0", "other-1"} {
		d.create([]*corev1.Pod{d.one(n, whole, 0, 0)}, 1)
		d.waitBound(time.Minute, n)
		d.admitChecked(n)
	}
	for _, n := range []string{"twin-early", "twin-late"} {
		d.create([]*corev1.Pod{d.one(n, whole, 0, 0)}, 1)
		d.waitBound(time.Minute, n)
	}
	late, err := c.Client.CoreV1().Pods(d.ns).Get(d.ctx, "twin-late", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.admit(late); err != nil {
		t.Fatalf("admit twin-late: %v", err)
	}
	d.create([]*corev1.Pod{d.one("third", whole, 0, 0)}, 1)
	polls := 0
	d.poll("the swap window", 20*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		polls++
		ps, err := d.list(ctx)
		if err != nil {
			return false, err
		}
		d.check(ctx, ps)
		d.invariant(ctx, nil)
		return polls >= twinWindowPolls, nil
	})
	third, err := c.Client.CoreV1().Pods(d.ns).Get(d.ctx, "third", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Spec.NodeName != "" {
		t.Errorf("third pod placed while every GPU is held or promised: %s", third.Annotations[api.AnnotationPlacement])
	}
	// The earlier twin is not blocked.
	d.admitChecked("twin-early")
	d.allocatedAsPlaced("twin-late")
	// Deleting the late twin frees its GPU for the third pod, which is
	// then admitted with the GPU its placement names.
	d.deletePods("twin-late")
	d.kl.forget(late)
	d.waitBound(time.Minute, "third")
	d.admitChecked("third")
	d.invariant(d.ctx, nil)
}

// allocatedAsPlaced checks an already admitted pod's allocation record
// against its placement (polling), without admitting it again.
func (d *dpNode) allocatedAsPlaced(name string) *corev1.Pod {
	d.t.Helper()
	var got *corev1.Pod
	d.poll("allocation of "+name+" equals its placement", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		d.invariant(ctx, nil)
		var err error
		got, _, err = podAllocation(ctx, d.c.Client, d.ns, name)
		return err == nil, err
	})
	return got
}
