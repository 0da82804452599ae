package e2e

import (
	"context"
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// twoGPUs is a server with two 16-slice GPUs.
func twoGPUs() harness.Shape {
	return harness.Shape{Model: "E2E-2x16GB", MemoryMiB: 16384, GPUs: 2, Slots: 8, Isolation: api.IsolationMPS,
		Link: func(_, j int) api.Link { return api.Link{Peer: j, Type: api.LinkPCIeSwitch} }}
}

// setInventory publishes a new inventory on a node, as the device plugin
// does: the annotation, and with capacity also the node's gpuslice capacity
// (which kubelet updates on its own schedule).
func (e *env) setInventory(node string, inv *api.Inventory, capacity bool) {
	e.t.Helper()
	s, err := inv.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := e.c.Client.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Annotations[api.AnnotationInventory] = s
		n, err = e.c.Client.CoreV1().Nodes().Update(e.ctx, n, metav1.UpdateOptions{})
		if err != nil || !capacity {
			return err
		}
		maps.Copy(n.Status.Capacity, harness.GPUResources(inv))
		maps.Copy(n.Status.Allocatable, harness.GPUResources(inv))
		_, err = e.c.Client.CoreV1().Nodes().UpdateStatus(e.ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("set inventory of %s: %v", node, err)
	}
}

// TestVanishedGPU is issue 9's class 3 (a vanished GPU drops a pod's other
// shares). A pod holds 12 slices on each GPU of a 2-GPU node; GPU 1 then
// disappears from the node's inventory. The pod keeps its 12 slices on GPU
// 0, so a pod that needs 8 slices must stay pending, and it binds once the
// first pod is gone.
func TestVanishedGPU(t *testing.T) {
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c, twoGPUs())
	node := e.group + "-0"
	e.create([]*corev1.Pod{e.one("two-gpus", 24, 0, 2)}, 1)
	holder := e.waitBound(time.Minute, "two-gpus")["two-gpus"]
	pl, err := api.ParsePlacement(holder.Annotations[api.AnnotationPlacement])
	if err != nil {
		t.Fatal(err)
	}
	if got := len(pl.Containers[0].Devices); got != 2 {
		t.Fatalf("placement on %d GPUs, want 2: %+v", got, pl)
	}

	inv := *e.inv[node]
	g0 := inv.GPUs[0]
	g0.Links = nil // its peer is gone
	inv.GPUs = []api.GPU{g0}
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	// The inventory changes first; kubelet's capacity still counts the GPU
	// (so kube-scheduler's node totals leave the decision to the extender).
	e.setInventory(node, &inv, false)
	t.Logf("GPU %s vanished from %s", e.inv[node].GPUs[1].UUID, node)
	e.invariant(e.ctx, nil)

	e.create([]*corev1.Pod{e.one("next", 8, 0, 0)}, 1)
	e.waitPending("next", nil, time.Minute, string(allocator.ReasonInsufficientMemory))
	// A pod that fits the remaining 4 slices of GPU 0 still binds.
	e.create([]*corev1.Pod{e.one("small", 4, 0, 0)}, 1)
	e.poll("small bound", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		e.invariant(ctx, nil)
		p, err := c.Client.CoreV1().Pods(e.ns).Get(ctx, "small", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == node, err
	})
	e.deletePods("two-gpus", "small")
	e.poll("next bound once the two-GPU pod is gone", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		e.invariant(ctx, nil)
		p, err := c.Client.CoreV1().Pods(e.ns).Get(ctx, "next", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == node, err
	})
}
