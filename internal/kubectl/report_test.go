package kubectl

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gpuslice/gpuslice/api"
)

// amt is an amount of which used is held, of total.
func amt(used, total int64) Amount { return Amount{Used: used, Free: total - used, Total: total} }

func TestFreeState(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    GPUReport
		want FreeState
	}{
		{"nothing held", GPUReport{Healthy: true, Slices: amt(0, 40), Core: amt(0, 100), Slots: amt(0, 4)}, StateFree},
		{"core only held", GPUReport{Healthy: true, Slices: amt(0, 40), Core: amt(10, 100), Slots: amt(1, 4)}, StatePartial},
		{"room left", GPUReport{Healthy: true, Slices: amt(20, 40), Core: amt(0, 100), Slots: amt(1, 4)}, StatePartial},
		{"slices gone", GPUReport{Healthy: true, Slices: amt(40, 40), Core: amt(0, 100), Slots: amt(1, 4)}, StateFull},
		{"slots gone", GPUReport{Healthy: true, Slices: amt(4, 40), Core: amt(0, 100), Slots: amt(4, 4)}, StateFull},
		{"over-committed", GPUReport{Healthy: true, Slices: amt(44, 40), Core: amt(0, 100), Slots: amt(2, 4)}, StateFull},
		{"unhealthy and free", GPUReport{Slices: amt(0, 40), Core: amt(0, 100), Slots: amt(0, 4)}, StateUnhealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := freeState(tc.g); got != tc.want {
				t.Errorf("freeState = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	g := func(state FreeState, used, total int64) GPUReport {
		return GPUReport{State: state, Slices: amt(used, total), Core: amt(0, 100)}
	}
	nodes := []NodeReport{
		{Name: "a", GPUs: []GPUReport{g(StateFree, 0, 10), g(StatePartial, 4, 10)}},
		{Name: "b", GPUs: []GPUReport{g(StateFull, 12, 10), g(StateUnhealthy, 0, 10)}},
	}
	got := summarize(nodes, []string{"ns/p"})
	want := Summary{
		Nodes: 2, GPUs: 4, Unhealthy: 1,
		// The over-committed GPU adds no negative free room.
		Slices: Amount{Used: 16, Free: 16, Total: 30}, Core: Amount{Free: 300, Total: 300},
		AllocatedPercent: 53.3,
		Fragmentation:    Fragmentation{WhollyFree: 1, PartlyFree: 1, Full: 1, StrandedSlices: 6, StrandedPercent: 37.5},
		Pending:          []string{"ns/p"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
	if got := summarize(nil, nil); got.AllocatedPercent != 0 || got.Fragmentation.StrandedPercent != 0 {
		t.Errorf("empty cluster: %+v", got)
	}
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {90 * time.Second, "90s"}, {5 * time.Minute, "5m"}, {3 * time.Hour, "3h"}, {72 * time.Hour, "3d"},
	} {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    GPUReport
		want string
	}{
		{"empty", GPUReport{Healthy: true, Slices: amt(0, 40)}, "░░░░░░░░░░   0%"},
		{"a sliver shows", GPUReport{Healthy: true, Slices: amt(1, 40)}, "█░░░░░░░░░   2%"},
		{"full", GPUReport{Healthy: true, Slices: amt(40, 40)}, "██████████ 100%"},
		{"over-committed is clamped", GPUReport{Healthy: true, Slices: amt(50, 40), Overcommitted: true}, "██████████ 125%"},
		{"no capacity", GPUReport{Healthy: true}, "░░░░░░░░░░   0%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (TableOptions{}).bar(tc.g); got != tc.want {
				t.Errorf("bar = %q, want %q", got, tc.want)
			}
		})
	}
	if got, want := (TableOptions{Color: true}).bar(GPUReport{Healthy: true, Slices: amt(39, 40)}), ansiRed+"██████████  97%"+ansiReset; got != want {
		t.Errorf("coloured bar = %q, want %q", got, want)
	}
}

// problemCluster has a node with a broken inventory, a pod whose placement
// does not match its own request (so the table shows an over-committed GPU
// the extender does not see: it does not charge that placement), and a
// pending pod that fits only because the extender does not charge it.
func problemCluster(t *testing.T) []runtime.Object {
	broken := plainNode("gpu-x")
	broken.Annotations = map[string]string{api.AnnotationInventory: `{"version":"gpuslice.io/v0"}`}
	forged := place(t, gpuPod("forged", 6, 0), "gpu-a", "GPU-a0", 0, true)
	forged.Spec.Containers[0].Resources = corev1.ResourceRequirements{} // asks for nothing, yet placed
	// A vGPU node whose plugin could not size one of its GPUs.
	vm := gpuNode(t, "gpu-vm", 0, vgpu(0, "GPU-v0", "GRID T4-4Q", 16384, 4096))
	inv, err := api.ParseInventory(vm.Annotations[api.AnnotationInventory])
	if err != nil {
		t.Fatal(err)
	}
	inv.Problems = []string{`GPU 0000:42:00.0: not served: vGPU type "GRID T4-8Q" is not offered`}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vm.Annotations[api.AnnotationInventory] = s
	return []runtime.Object{
		gpuNode(t, "gpu-a", 0, gpu(0, "GPU-a0", "A100", 10, api.IsolationMPS)),
		vm,
		broken,
		place(t, gpuPod("one", 6, 0), "gpu-a", "GPU-a0", 0, true),
		forged,
		gpuPod("four", 4, 0),
	}
}

func TestGoldenProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"inspect_problems", []string{"inspect", "-o", "wide"}},
		{"explain_problems", []string{"explain", "four"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, problemCluster(t), false, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
		})
	}
}
