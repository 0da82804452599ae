package kubectl

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// fragmented is a cluster worth defragmenting:
//
//   - n1: two T4 (16 slices). ml/p-a holds 8 slices of GPU 0, ml/p-b 4 of
//     GPU 1.
//   - n2: two T4. ml/p-c holds 10 slices of GPU 0, ml/p-d 6 of GPU 1.
//   - n3: one T4, cordoned. ml/p-e holds 2 slices of GPU 0.
//   - n4: one T4 tainted NoSchedule, ml/p-f (tolerating nothing) holds 1
//     slice of GPU 0; ml/gone, finishing (deleted), holds 1 slice of
//     GPU 0 and may not move.
//   - n5: one T4, its inventory in 2048 MiB slices: not part of the plan,
//     nor is ml/p-g on it.
//   - ml/odd asks for 4 slices of n1's GPU 0 but its placement records 5:
//     the extender does not charge it, nor does the plan.
func fragmented(t *testing.T) []runtime.Object {
	t.Helper()
	t4 := func(i int, uuid string) api.GPU { return gpu(i, uuid, "T4", 16, api.IsolationNone) }
	n3 := gpuNode(t, "n3", 0, t4(0, "GPU-3-0"))
	n3.Spec.Unschedulable = true
	n4 := gpuNode(t, "n4", 0, t4(0, "GPU-4-0"))
	n4.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 2048, GPUs: []api.GPU{t4(0, "GPU-5-0")}}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n5 := plainNode("n5")
	n5.Annotations = map[string]string{api.AnnotationInventory: s}
	gone := place(t, gpuPod("gone", 1, 0), "n4", "GPU-4-0", 0, true)
	gone.DeletionTimestamp = &metav1.Time{Time: now.Add(-time.Minute)}
	odd := place(t, gpuPod("odd", 5, 0), "n1", "GPU-1-0", 0, true)
	odd.Spec.Containers[0].Resources.Limits[api.ResourceGPUMem] = *resource.NewQuantity(4, resource.DecimalSI)
	return []runtime.Object{
		gpuNode(t, "n1", 0, t4(0, "GPU-1-0"), t4(1, "GPU-1-1")),
		gpuNode(t, "n2", 0, t4(0, "GPU-2-0"), t4(1, "GPU-2-1")),
		n3, n4, n5,
		place(t, gpuPod("p-a", 8, 0), "n1", "GPU-1-0", 0, true),
		place(t, gpuPod("p-b", 4, 0), "n1", "GPU-1-1", 1, true),
		place(t, gpuPod("p-c", 10, 0), "n2", "GPU-2-0", 0, true),
		place(t, gpuPod("p-d", 6, 0), "n2", "GPU-2-1", 1, true),
		place(t, gpuPod("p-e", 2, 0), "n3", "GPU-3-0", 0, true),
		place(t, gpuPod("p-f", 1, 0), "n4", "GPU-4-0", 0, true),
		place(t, gpuPod("p-g", 1, 0), "n5", "GPU-5-0", 0, true),
		gone, odd,
		gpuPod("pending", 2, 0),
	}
}

func TestDefragGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster func(*testing.T) []runtime.Object
		args    []string
	}{
		{name: "defrag_table", cluster: fragmented, args: []string{"defrag", "--dry-run"}},
		{name: "defrag_json", cluster: fragmented, args: []string{"defrag", "--dry-run", "-o", "json"}},
		{name: "defrag_max_moves", cluster: fragmented, args: []string{"defrag", "--dry-run", "--max-moves", "1", "--policy", "gpuslice"}},
		{name: "defrag_fixtures", cluster: cluster, args: []string{"defrag", "--dry-run"}},
		{name: "defrag_none", cluster: cluster, args: []string{"defrag", "--dry-run", "--max-moves", "1", "-o", "yaml", "--slice-mib", "2048"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, tc.cluster(t), false, tc.args...)
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			golden(t, tc.name, got)
		})
	}
}

// TestDefragPlan checks the fragmented cluster's plan by hand, binpack:
// p-e (2 slices, the smallest) leaves the cordoned n3 for the fuller node
// n2, beside p-c; p-b (4) follows it there, filling that GPU; p-d (6) goes
// beside p-a on n1 (n1's GPU 1 is free by then: no destination). n4's GPU
// is never freed, gone being pinned while it finishes; nothing may go to
// n3 or n4.
func TestDefragPlan(t *testing.T) {
	objs := fragmented(t)
	in := Input{Now: now}
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Node:
			in.Nodes = append(in.Nodes, *v)
		case *corev1.Pod:
			in.Pods = append(in.Pods, *v)
		}
	}
	r, err := Defrag(context.Background(), in, DefragOptions{Policy: allocator.Binpack{}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range r.Plan.Moves {
		got = append(got, m.Pod+" "+gpuList(m.FromNode, m.FromGPUs)+" -> "+gpuList(m.ToNode, m.ToGPUs))
	}
	want := []string{
		"ml/p-e n3 GPU 0 -> n2 GPU 0",
		"ml/p-b n1 GPU 1 -> n2 GPU 0",
		"ml/p-d n2 GPU 1 -> n1 GPU 0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("moves (-want +got):\n%s", diff)
	}
	if r.Plan.FreedGPUs != 3 || r.Nodes != 4 || r.Pods != 7 || len(r.Skipped) != 2 {
		t.Errorf("freed %d, nodes %d, pods %d, skipped %v", r.Plan.FreedGPUs, r.Nodes, r.Pods, r.Skipped)
	}
}

func TestDefragRefusesWithoutDryRun(t *testing.T) {
	_, err := run(t, fragmented(t), false, "defrag")
	if err == nil || !strings.Contains(err.Error(), "no eviction") || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("defrag without --dry-run: %v, want a refusal naming --dry-run", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"defrag", "--dry-run", "-o", "wide"}, `unknown output format "wide"`},
		{[]string{"defrag", "--dry-run", "--policy", "random"}, "--policy"},
		{[]string{"defrag", "--dry-run", "n1"}, "unknown command"},
	} {
		if _, err := run(t, fragmented(t), false, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
