package e2e

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/internal/inspect"
)

// TestScheduling runs the scheduling scenarios on one control plane; each
// subtest has its own namespace and nodes.
func TestScheduling(t *testing.T) {
	c := startCluster(t, harness.Options{})
	t.Run("Examples", func(t *testing.T) { testExamples(t, c) })
	t.Run("Placement", func(t *testing.T) { testPlacement(t, c) })
	t.Run("Unschedulable", func(t *testing.T) { testUnschedulable(t, c) })
	t.Run("DeletionFreesCapacity", func(t *testing.T) { testDeletionFreesCapacity(t, c) })
	t.Run("Burst500", func(t *testing.T) { testBurst(t, c, 500) })
}

func logView(t *testing.T, v *inspect.View) {
	t.Helper()
	var b bytes.Buffer
	if err := inspect.Render(&b, v); err != nil {
		t.Fatal(err)
	}
	t.Logf("inspect view:\n%s", b.String())
}

// testExamples schedules manifests/examples/*.yaml (what `make demo`
// shows): every pod but cannot-fit is bound with a valid placement, and
// cannot-fit says why it waits.
func testExamples(t *testing.T, c *harness.Cluster) {
	e := newEnv(t, c, harness.A100x8(), harness.H100x8(), harness.T4x4())
	files, err := filepath.Glob(filepath.Join(c.RepoRoot(), "manifests", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var pods []*corev1.Pod
	var bound []string
	for _, f := range files {
		objs, err := harness.DecodeManifest(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			p, ok := o.(*corev1.Pod)
			if !ok {
				t.Fatalf("%s: %T is not a Pod", f, o)
			}
			p.Namespace = e.ns
			p.Spec.NodeSelector = map[string]string{groupLabel: e.group}
			pods = append(pods, p)
			if p.Name != "cannot-fit" {
				bound = append(bound, p.Name)
			}
		}
	}
	e.create(pods, len(pods))
	e.waitBound(time.Minute, bound...)
	e.waitFailedScheduling("cannot-fit", time.Minute, string(allocator.ReasonInsufficientMemory))
	logView(t, e.view())
}

// testPlacement schedules waves of single-GPU, multi-GPU and multi-container
// pods on heterogeneous nodes; after every wave every placement must match
// its request and no GPU may be over-committed.
func testPlacement(t *testing.T, c *harness.Cluster) {
	e := newEnv(t, c, harness.A100x8(), harness.H100x8(), harness.T4x4())
	timeout := time.Minute

	t4 := e.one("t4-only", 4, 0, 0)
	t4.Annotations = map[string]string{api.AnnotationGPUModels: harness.T4x4().Model}
	wave1 := []*corev1.Pod{
		e.one("s-mem4", 4, 0, 0),
		e.one("s-mem8-core50", 8, 50, 0),
		e.one("s-mem16", 16, 0, 0),
		e.one("s-mem40", 40, 0, 0),
		e.one("s-mem2-core100", 2, 100, 0),
		e.one("s-mem70", 70, 0, 0), // only an H100 has 70 slices
		t4,
		e.pod("cpu-only", ctr{name: "main"}),
	}
	wave2 := []*corev1.Pod{
		e.one("m-mem32-x4", 32, 0, 4),
		e.one("m-mem120-x2", 120, 0, 2), // 60 slices on each of 2 GPUs: H100 only
		e.one("m-mem16-core100-x2", 16, 100, 2),
		e.one("m-mem12-x3", 12, 0, 3),
	}
	wave3 := []*corev1.Pod{
		e.pod("c-init-two-apps", ctr{name: "setup", init: true, mem: 8}, ctr{name: "a", mem: 4}, ctr{name: "b", mem: 4}),
		e.pod("c-gpu-and-sidecar", ctr{name: "gpu", mem: 6, core: 30}, ctr{name: "sidecar"}),
		e.pod("c-multi-and-single", ctr{name: "a", mem: 8, count: 2}, ctr{name: "b", mem: 2}),
		e.pod("c-init-multi", ctr{name: "setup", init: true, mem: 2, count: 2}, ctr{name: "main", mem: 4}),
	}
	for i, wave := range [][]*corev1.Pod{wave1, wave2, wave3} {
		begin := time.Now()
		e.create(wave, len(wave))
		pods := e.waitBound(timeout, names(wave)...)
		t.Logf("wave %d: %d pods bound in %v", i+1, len(wave), time.Since(begin).Round(time.Millisecond))
		if got := pods["t4-only"]; i == 0 && !strings.HasPrefix(got.Spec.NodeName, e.group) {
			t.Fatalf("t4-only on %s", got.Spec.NodeName)
		}
		if got := pods["cpu-only"]; i == 0 && got.Annotations[api.AnnotationPlacement] != "" {
			t.Fatalf("cpu-only pod got a placement: %s", got.Annotations[api.AnnotationPlacement])
		}
	}
	v := e.view()
	// The GPU model restriction held, and the H100-only pods are on the H100.
	pods := e.waitBound(timeout, "t4-only", "s-mem70", "m-mem120-x2")
	for name, want := range map[string]string{"t4-only": harness.T4x4().Model, "s-mem70": harness.H100x8().Model, "m-mem120-x2": harness.H100x8().Model} {
		pl, err := api.ParsePlacement(pods[name].Annotations[api.AnnotationPlacement])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, d := range pl.Containers[0].Devices {
			if g := v.GPU(d.UUID); g == nil || g.Model != want {
				t.Errorf("%s on GPU %+v, want a %s", name, g, want)
			}
		}
	}
	logView(t, v)
}

// testUnschedulable checks that pods that cannot fit stay pending with a
// FailedScheduling event that says why, and that the node still takes pods
// that fit.
func testUnschedulable(t *testing.T, c *harness.Cluster) {
	e := newEnv(t, c, harness.T4x4()) // 4 GPUs x 16 slices
	wrongModel := e.one("wrong-model", 1, 0, 0)
	wrongModel.Annotations = map[string]string{api.AnnotationGPUModels: harness.H100x8().Model}
	cases := []struct {
		pod  *corev1.Pod
		want []string
	}{
		// Fits the node's total (64) but no single GPU (16).
		{e.one("too-big-for-a-gpu", 20, 0, 0), []string{string(allocator.ReasonInsufficientMemory)}},
		// More than the node's total: kube-scheduler itself says so.
		{e.one("too-big-for-the-node", 100, 0, 0), []string{"Insufficient " + api.ResourceGPUMem}},
		{e.one("uneven-split", 3, 0, 2), []string{string(allocator.ReasonInvalidRequest), "cannot be split evenly"}},
		{e.one("count-without-mem", 0, 0, 2), []string{string(allocator.ReasonInvalidRequest), "without gpu-mem"}},
		{e.one("core-over-100", 2, 150, 1), []string{string(allocator.ReasonInvalidRequest), "more than 100 per GPU"}},
		{e.one("too-many-gpus", 8, 0, 8), []string{string(allocator.ReasonNotEnoughGPUs)}},
		{wrongModel, []string{string(allocator.ReasonModelNotAllowed)}},
	}
	// The admission policy rejects the requests that break the contract at
	// create; with it suspended they reach the extender, which must still
	// say why (defence in depth: the policy may be off or bypassed).
	invalid := map[string]bool{"uneven-split": true, "count-without-mem": true, "core-over-100": true}
	var pods, shapeless []*corev1.Pod
	for _, tc := range cases {
		if invalid[tc.pod.Name] {
			if _, err := c.Client.CoreV1().Pods(e.ns).Create(e.ctx, tc.pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil ||
				!strings.Contains(err.Error(), harness.PolicyRequestShape) || !strings.Contains(err.Error(), tc.want[1]) {
				t.Errorf("create %s: %v; want %s to reject it saying %q", tc.pod.Name, err, harness.PolicyRequestShape, tc.want[1])
			}
			shapeless = append(shapeless, tc.pod)
			continue
		}
		pods = append(pods, tc.pod)
	}
	restore := suspendPolicy(e.ctx, t, c, harness.PolicyRequestShape)
	e.create(shapeless, len(shapeless))
	if err := restore(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.create(pods, len(pods))
	for _, tc := range cases {
		e.waitFailedScheduling(tc.pod.Name, time.Minute, tc.want...)
	}
	// The node is fine for a pod that fits, and the others still wait.
	e.create([]*corev1.Pod{e.one("fits", 16, 0, 0)}, 1)
	e.waitBound(time.Minute, "fits")
	e.view()
	for _, tc := range cases {
		p, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, tc.pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s was bound to %s", p.Name, p.Spec.NodeName)
		}
	}
}

// testDeletionFreesCapacity fills every GPU of a node, checks the next pod
// waits, and that deleting pods frees exactly their GPUs for the next ones.
func testDeletionFreesCapacity(t *testing.T, c *harness.Cluster) {
	e := newEnv(t, c, harness.T4x4())
	var fill []*corev1.Pod
	for i := range 4 {
		fill = append(fill, e.one(fmt.Sprintf("full-%d", i), 16, 0, 0))
	}
	e.create(fill, 4)
	pods := e.waitBound(time.Minute, names(fill)...)
	gpuOf := map[string]string{}
	for _, p := range fill {
		pl, err := api.ParsePlacement(pods[p.Name].Annotations[api.AnnotationPlacement])
		if err != nil {
			t.Fatal(err)
		}
		gpuOf[p.Name] = pl.Containers[0].Devices[0].UUID
	}
	if len(distinct(gpuOf)) != 4 {
		t.Fatalf("4 whole-GPU pods share GPUs: %v", gpuOf)
	}

	e.create([]*corev1.Pod{e.one("next", 16, 0, 0)}, 1)
	e.waitFailedScheduling("next", time.Minute)
	e.deletePods("full-2")
	pods = e.waitBound(time.Minute, "next")
	if got := placementGPU(t, pods["next"]); got != gpuOf["full-2"] {
		t.Fatalf("next landed on %s, want the freed GPU %s", got, gpuOf["full-2"])
	}

	// Half-GPU pods: both go to the one GPU freed by deleting full-0.
	e.deletePods("full-0")
	halves := []*corev1.Pod{e.one("half-a", 8, 0, 0), e.one("half-b", 8, 0, 0)}
	e.create(halves, 2)
	pods = e.waitBound(time.Minute, "half-a", "half-b")
	for _, h := range halves {
		if got := placementGPU(t, pods[h.Name]); got != gpuOf["full-0"] {
			t.Fatalf("%s landed on %s, want the freed GPU %s", h.Name, got, gpuOf["full-0"])
		}
	}
	v := e.view()
	for _, n := range v.Nodes {
		for _, g := range n.GPUs {
			if g.Slices.Used != g.Slices.Total {
				t.Errorf("GPU %d: %d/%d slices used, want full", g.Index, g.Slices.Used, g.Slices.Total)
			}
		}
	}
	logView(t, v)
}

// testBurst creates n pods concurrently on six heterogeneous nodes and
// checks that all are bound, every placement fits, and no GPU is ever
// over-committed (checked on every poll while the burst is scheduled).
func testBurst(t *testing.T, c *harness.Cluster, n int) {
	e := newEnv(t, c, harness.A100x8(), harness.A100x8(), harness.H100x8(), harness.H100x8(), harness.T4x4(), harness.T4x4())
	mems := []int64{1, 2, 2, 4, 1, 3}
	var pods []*corev1.Pod
	for i := range n {
		var core, count int64
		mem := mems[i%len(mems)]
		if i%5 == 0 {
			core = 20
		}
		if i%25 == 0 {
			mem, count = 4, 2
		}
		pods = append(pods, e.one(fmt.Sprintf("burst-%03d", i), mem, core, count))
	}
	begin := time.Now()
	e.create(pods, 50)
	created := time.Since(begin)
	e.waitBound(4*time.Minute, names(pods)...)
	took := time.Since(begin)
	t.Logf("burst: %d pods created in %v, all bound after %v (%.0f pods/s)", n, created.Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds())
	logNodeTotals(t, e.view())
}

// logNodeTotals logs one line per node: slices used out of total.
func logNodeTotals(t *testing.T, v *inspect.View) {
	t.Helper()
	for _, n := range v.Nodes {
		var used, total int64
		for _, g := range n.GPUs {
			used += g.Slices.Used
			total += g.Slices.Total
		}
		t.Logf("node %s (%s): %d pods, %d/%d slices", n.Name, n.GPUs[0].Model, n.Pods, used, total)
	}
}

func names(pods []*corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// placementGPU returns the first GPU of the pod's first container.
func placementGPU(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
	if err != nil || len(pl.Containers) == 0 || len(pl.Containers[0].Devices) == 0 {
		t.Fatalf("pod %s: placement %q: %v", p.Name, p.Annotations[api.AnnotationPlacement], err)
	}
	return pl.Containers[0].Devices[0].UUID
}
