package inspect

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
)

func node(t *testing.T, name string, gpus int, slices int64) corev1.Node {
	t.Helper()
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024}
	for i := 0; i < gpus; i++ {
		inv.GPUs = append(inv.GPUs, api.GPU{
			Index: i, UUID: name + "-gpu" + string(rune('0'+i)), Model: "A100", MemoryMiB: slices * 1024,
			Slices: slices, Slots: 4, CoreUnits: 100, Healthy: true, Isolation: api.IsolationMPS,
		})
	}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{api.AnnotationInventory: s}}}
}

func pod(t *testing.T, name, nodeName string, cs ...api.ContainerPlacement) corev1.Pod {
	t.Helper()
	p := &api.Placement{Version: api.PlacementVersion, Node: nodeName, AssignedAt: time.Unix(0, 0).UTC(), Containers: cs}
	s, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	spec := corev1.PodSpec{NodeName: nodeName}
	for _, c := range cs {
		ctr := corev1.Container{Name: c.Name, Resources: requestOf(c)}
		if c.Init {
			spec.InitContainers = append(spec.InitContainers, ctr)
		} else {
			spec.Containers = append(spec.Containers, ctr)
		}
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{api.AnnotationPlacement: s}},
		Spec:       spec,
	}
}

// requestOf returns the resources of a container whose request the
// placement c satisfies exactly (api.Placement.ConsistentWith).
func requestOf(c api.ContainerPlacement) corev1.ResourceRequirements {
	var mem, core int64
	for _, d := range c.Devices {
		mem += d.Slices
		core += d.Core
	}
	l := corev1.ResourceList{api.ResourceGPUMem: *resource.NewQuantity(mem, resource.DecimalSI)}
	if core > 0 {
		l[api.ResourceGPUCore] = *resource.NewQuantity(core, resource.DecimalSI)
	}
	if len(c.Devices) > 1 {
		l[api.ResourceGPUCount] = *resource.NewQuantity(int64(len(c.Devices)), resource.DecimalSI)
	}
	return corev1.ResourceRequirements{Limits: l}
}

func share(uuid string, slices, core int64) api.DeviceShare {
	return api.DeviceShare{UUID: uuid, Slices: slices, Core: core, Slots: 1}
}

func TestBuildAccounting(t *testing.T) {
	nodes := []corev1.Node{node(t, "b", 2, 40), node(t, "a", 1, 10), {ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}}}
	terminal := pod(t, "done", "b", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("b-gpu0", 40, 100)}})
	terminal.Status.Phase = corev1.PodSucceeded
	pods := []corev1.Pod{
		// Two app containers on gpu0 add up; an init container bigger than
		// their sum on gpu0 sets the pod's charge there.
		pod(t, "p1", "b",
			api.ContainerPlacement{Name: "init", Init: true, Devices: []api.DeviceShare{share("b-gpu0", 20, 0)}},
			api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("b-gpu0", 5, 10)}},
			api.ContainerPlacement{Name: "y", Devices: []api.DeviceShare{share("b-gpu0", 5, 10), share("b-gpu1", 5, 10)}},
		),
		pod(t, "p2", "b", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("b-gpu1", 8, 50)}}),
		terminal,
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pending"}},
	}
	v := Build(nodes, pods)
	if len(v.Nodes) != 2 || v.Nodes[0].Name != "a" || v.Nodes[1].Name != "b" {
		t.Fatalf("nodes = %+v, want a and b", v.Nodes)
	}
	if len(v.Problems) != 0 {
		t.Fatalf("problems: %v", v.Problems)
	}
	g0, g1 := v.GPU("b-gpu0"), v.GPU("b-gpu1")
	if g0.Slices != (Usage{20, 40}) || g0.Core != (Usage{20, 100}) || g0.Slots != (Usage{2, 4}) {
		t.Errorf("gpu0 = %+v %+v %+v", g0.Slices, g0.Core, g0.Slots)
	}
	if g1.Slices != (Usage{13, 40}) || g1.Core != (Usage{60, 100}) || g1.Slots != (Usage{2, 4}) {
		t.Errorf("gpu1 = %+v %+v %+v", g1.Slices, g1.Core, g1.Slots)
	}
	if len(g0.Holders) != 3 || g0.Holders[0].Container != "init" || !g0.Holders[0].Init {
		t.Errorf("gpu0 holders = %+v", g0.Holders)
	}
	if got := v.Node("b").Pods; got != 2 {
		t.Errorf("pods on b = %d, want 2 (terminal pods hold nothing)", got)
	}
	if oc := v.Overcommitted(); len(oc) != 0 {
		t.Errorf("overcommitted: %v", oc)
	}
}

func TestBuildProblemsAndOvercommit(t *testing.T) {
	nodes := []corev1.Node{node(t, "a", 1, 10)}
	bad := pod(t, "bad", "a")
	bad.Annotations[api.AnnotationPlacement] = "{"
	moved := pod(t, "moved", "a", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("a-gpu0", 1, 0)}})
	moved.Spec.NodeName = "other"
	pods := []corev1.Pod{
		pod(t, "big1", "a", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("a-gpu0", 6, 0)}}),
		pod(t, "big2", "a", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("a-gpu0", 6, 0)}}),
		pod(t, "ghost-gpu", "a", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("nope", 1, 0)}}),
		pod(t, "ghost-node", "zz", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("a-gpu0", 1, 0)}}),
		bad, moved,
	}
	// moved is bound elsewhere than its placement says: the extender does
	// not charge it, so neither does the view (12/10, not 13/10).
	v := Build(nodes, pods)
	if len(v.Problems) != 4 {
		t.Errorf("problems = %q, want 4", v.Problems)
	}
	oc := v.Overcommitted()
	if len(oc) != 1 || !strings.Contains(oc[0], "slices 12/10") {
		t.Errorf("overcommitted = %q", oc)
	}
	var buf bytes.Buffer
	if err := Render(&buf, v); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"NODE", "!0", "12/10", "ns/big1/c=6s/0c", "OVER-COMMITTED", "PROBLEM: pod ns/bad", "PROBLEM: pod ns/moved: placement inconsistent"} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderTable(t *testing.T) {
	nodes := []corev1.Node{node(t, "n1", 2, 40)}
	pods := []corev1.Pod{pod(t, "p", "n1",
		api.ContainerPlacement{Name: "setup", Init: true, Devices: []api.DeviceShare{share("n1-gpu1", 2, 0)}},
		api.ContainerPlacement{Name: "main", Devices: []api.DeviceShare{share("n1-gpu1", 8, 50)}})}
	var buf bytes.Buffer
	if err := Render(&buf, Build(nodes, pods)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"NODE  GPU  MODEL  SLICES  CORE    SLOTS  HOLDERS",
		"n1    0    A100   0/40    0/100   0/4    -",
		"      1    A100   8/40    50/100  1/4    ns/p/init:setup=2s/0c ns/p/main=8s/50c",
		"slice size: 1024 MiB (node n1)",
	}
	got := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("render:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

// TestBuildSidecar checks the sidecar rule: a sidecar's share adds to the
// app containers' and to the init container that starts after it.
func TestBuildSidecar(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := pod(t, "s", "a",
		api.ContainerPlacement{Name: "side", Init: true, Devices: []api.DeviceShare{share("a-gpu0", 2, 0)}},
		api.ContainerPlacement{Name: "init", Init: true, Devices: []api.DeviceShare{share("a-gpu0", 6, 0)}},
		api.ContainerPlacement{Name: "app", Devices: []api.DeviceShare{share("a-gpu0", 3, 0)}},
	)
	p.Spec.InitContainers[0].RestartPolicy = &always
	v := Build([]corev1.Node{node(t, "a", 1, 10)}, []corev1.Pod{p})
	g := v.GPU("a-gpu0")
	if g == nil {
		t.Fatal("no GPU")
	}
	// max(app 3 + sidecar 2, sidecar 2 + init 6) = 8 slices; slots likewise
	// max(1+1, 1+1) = 2.
	if g.Slices.Used != 8 || g.Slots.Used != 2 {
		t.Errorf("used slices %d slots %d, want 8 and 2", g.Slices.Used, g.Slots.Used)
	}
	// Without the sidecar flag the same placement is "init max": max(3+2, 6).
	p.Spec.InitContainers[0].RestartPolicy = nil
	if g := Build([]corev1.Node{node(t, "a", 1, 10)}, []corev1.Pod{p}).GPU("a-gpu0"); g.Slices.Used != 6 {
		t.Errorf("without sidecar: used slices %d, want 6", g.Slices.Used)
	}
}

// TestBuildWholeInstances: on vgpu and passthrough GPUs each share is
// charged a whole instance, as the extender charges it; the holders keep
// the shares asked.
func TestBuildWholeInstances(t *testing.T) {
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024, GPUs: []api.GPU{
		{Index: 0, UUID: "v0", Model: "T4", MemoryMiB: 16384, Slices: 16, Slots: 4, CoreUnits: 100, Healthy: true,
			Isolation: api.IsolationVGPU, VGPUType: "GRID T4-4Q", InstanceMiB: 4096},
		{Index: 1, UUID: "p1", Model: "T4", MemoryMiB: 16384, Slices: 16, Slots: 1, CoreUnits: 100, Healthy: true,
			Isolation: api.IsolationPassthrough, InstanceMiB: 16384},
	}}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	nodes := []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "vm", Annotations: map[string]string{api.AnnotationInventory: s}}}}
	pods := []corev1.Pod{
		pod(t, "a", "vm", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("v0", 3, 0)}}),
		pod(t, "b", "vm", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("v0", 1, 10)}}),
		pod(t, "c", "vm", api.ContainerPlacement{Name: "c", Devices: []api.DeviceShare{share("p1", 2, 0)}}),
	}
	v := Build(nodes, pods)
	if len(v.Problems) != 0 {
		t.Fatalf("problems: %v", v.Problems)
	}
	type use struct{ Slices, Core, Slots Usage }
	got := map[string]use{}
	for _, g := range v.Nodes[0].GPUs {
		got[g.UUID] = use{g.Slices, g.Core, g.Slots}
	}
	want := map[string]use{
		"v0": {Usage{8, 16}, Usage{50, 100}, Usage{2, 4}},
		"p1": {Usage{16, 16}, Usage{100, 100}, Usage{1, 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	if h := v.GPU("v0").Holders; len(h) != 2 || h[0].Slices != 3 || h[1].Core != 10 {
		t.Errorf("holders = %+v, want the shares asked", h)
	}
	if oc := v.Overcommitted(); len(oc) != 0 {
		t.Errorf("overcommitted: %v", oc)
	}
}
