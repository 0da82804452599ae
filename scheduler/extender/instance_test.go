package extender

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// testModes is the extender's --runtime-class-isolation in these tests.
var testModes = api.RuntimeClassModes{"kata-vgpu": api.IsolationVGPU, "kubevirt": api.IsolationPassthrough}

// isolationNodes are a node of one GPU of two 4 GiB vGPU instances, one of
// a passthrough GPU and one of an MPS GPU.
func isolationNodes(t *testing.T) []*v1.Node {
	return []*v1.Node{
		testutil.InstanceNode(t, "vgpu", 1, api.IsolationVGPU, 8, 4),
		testutil.InstanceNode(t, "pt", 1, api.IsolationPassthrough, 16, 16),
		testutil.GPUNode(t, "mps", 1, "T4", 16, 48),
	}
}

// vmPod is a pod of one container of slices slices and runtime class rc
// ("" for none).
func vmPod(name, rc string, slices int64) *v1.Pod {
	p := testutil.Pod(name, testutil.Container("c", slices, 0, 0))
	if rc != "" {
		p.Spec.RuntimeClassName = &rc
	}
	return p
}

func newIsolationExtender(t *testing.T, pods ...*v1.Pod) *Extender {
	t.Helper()
	ext, _, _ := newTestExtender(t, isolationNodes(t), pods...)
	WithRuntimeClassModes(testModes)(ext)
	return ext
}

func TestFilterIsolation(t *testing.T) {
	const (
		sandboxGPUs = `GPUs are for VM sandboxes (vgpu/passthrough); the pod's runtime class runs containers (container "c": 1 healthy GPU(s) of an allowed model are vgpu or passthrough)`
		noVGPU      = `no GPU of isolation mode vgpu, which the pod's runtime class needs (container "c": 1 healthy GPU(s) of an allowed model are of other isolation modes)`
		noPT        = `no GPU of isolation mode passthrough, which the pod's runtime class needs (container "c": 1 healthy GPU(s) of an allowed model are of other isolation modes)`
	)
	tests := []struct {
		name             string
		pod              *v1.Pod
		want             []string
		wantUnresolvable map[string]string
	}{
		{
			name:             "no runtime class runs containers",
			pod:              vmPod("p", "", 3),
			want:             []string{"mps"},
			wantUnresolvable: map[string]string{"vgpu": sandboxGPUs, "pt": sandboxGPUs},
		},
		{
			name:             "an unmapped runtime class runs containers",
			pod:              vmPod("p", "runc", 3),
			want:             []string{"mps"},
			wantUnresolvable: map[string]string{"vgpu": sandboxGPUs, "pt": sandboxGPUs},
		},
		{
			name:             "a vgpu runtime class",
			pod:              vmPod("p", "kata-vgpu", 3),
			want:             []string{"vgpu"},
			wantUnresolvable: map[string]string{"mps": noVGPU, "pt": noVGPU},
		},
		{
			name:             "a passthrough runtime class",
			pod:              vmPod("p", "kubevirt", 3),
			want:             []string{"pt"},
			wantUnresolvable: map[string]string{"mps": noPT, "vgpu": noPT},
		},
		{
			name: "larger than the vGPU instance",
			pod:  vmPod("p", "kata-vgpu", 5),
			want: []string{},
			wantUnresolvable: map[string]string{
				"mps":  noVGPU,
				"pt":   noVGPU,
				"vgpu": `gpu-mem request larger than every vGPU instance (container "c": needs 5 slices, 0 core per GPU; the largest instance holds 4 slices, 50 core)`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext := newIsolationExtender(t, tc.pod)
			res := ext.Filter(t.Context(), argsFor(tc.pod, "vgpu", "pt", "mps"))
			if diff := cmp.Diff(tc.want, *res.NodeNames); diff != "" {
				t.Errorf("feasible (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnresolvable, map[string]string(res.FailedAndUnresolvableNodes)); diff != "" {
				t.Errorf("unresolvable (-want +got):\n%s", diff)
			}
			if len(res.FailedNodes) != 0 {
				t.Errorf("failed nodes %v, want none (preemption cannot help)", res.FailedNodes)
			}
			// Prioritize scores the same request: only the feasible node.
			prio, err := ext.Prioritize(t.Context(), argsFor(tc.pod, "vgpu", "pt", "mps"))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range prio {
				if feasible := len(tc.want) > 0 && h.Host == tc.want[0]; (h.Score > 0) != feasible {
					t.Errorf("prioritize scored %s %d", h.Host, h.Score)
				}
			}
		})
	}
}

// TestBindIsolation binds VM pods by whole instances and re-checks the
// isolation mode at bind.
func TestBindIsolation(t *testing.T) {
	t.Run("two 3 GiB VM pods fill two 4 GiB instances", func(t *testing.T) {
		pods := []*v1.Pod{vmPod("a", "kata-vgpu", 3), vmPod("b", "kata-vgpu", 3), vmPod("c", "kata-vgpu", 3)}
		ext, c, client := newTestExtender(t, isolationNodes(t), pods...)
		WithRuntimeClassModes(testModes)(ext)
		for _, p := range pods[:2] {
			schedule(t, ext, p, "vgpu")
			got, err := client.CoreV1().Pods("default").Get(t.Context(), p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pl, err := api.ParsePlacement(got.Annotations[api.AnnotationPlacement])
			if err != nil {
				t.Fatal(err)
			}
			want := []api.DeviceShare{{UUID: testutil.GPUUUID("vgpu", 0), Slices: 3, Slots: 1}}
			if diff := cmp.Diff(want, pl.Containers[0].Devices); diff != "" {
				t.Errorf("pod %s: placement records the share asked (-want +got):\n%s", p.Name, diff)
			}
		}
		if diff := cmp.Diff(map[string][]int64{"mps": {16}, "pt": {16}, "vgpu": {0}}, testutil.FreeSlices(c)); diff != "" {
			t.Errorf("free slices (-want +got):\n%s", diff)
		}
		res := ext.Filter(t.Context(), argsFor(pods[2], "vgpu"))
		if len(*res.NodeNames) != 0 || !strings.Contains(res.FailedNodes["vgpu"], "insufficient gpu-mem") {
			t.Errorf("third pod: feasible %v, failed %v; want it refused for gpu-mem (preemption may help)", *res.NodeNames, res.FailedNodes)
		}
	})
	t.Run("a container pod is refused when its node turned vgpu", func(t *testing.T) {
		p := vmPod("p", "", 3)
		ext, c, _ := newTestExtender(t, isolationNodes(t), p)
		WithRuntimeClassModes(testModes)(ext)
		if res := ext.Filter(t.Context(), argsFor(p, "mps")); len(*res.NodeNames) != 1 {
			t.Fatalf("filter: %+v", res)
		}
		// The device plugin restarts in vgpu mode before the bind.
		c.SetNode("mps", testutil.InstanceInventory(t, "mps", 1, api.IsolationVGPU, 16, 4))
		err := ext.Bind(t.Context(), bindArgs(p, "mps"))
		if err == nil || !strings.Contains(err.Error(), string(allocator.ReasonSandboxGPUs)) {
			t.Fatalf("bind = %v, want refused: %s", err, allocator.ReasonSandboxGPUs)
		}
		if c.HasPod(p.UID) {
			t.Error("refused bind left the pod assumed")
		}
	})
	t.Run("a VM pod binds to its mode", func(t *testing.T) {
		p := vmPod("p", "kubevirt", 3)
		ext, c, _ := newTestExtender(t, isolationNodes(t), p)
		WithRuntimeClassModes(testModes)(ext)
		schedule(t, ext, p, "pt")
		if diff := cmp.Diff(map[string][]int64{"mps": {16}, "pt": {0}, "vgpu": {8}}, testutil.FreeSlices(c)); diff != "" {
			t.Errorf("passthrough takes the whole GPU (-want +got):\n%s", diff)
		}
	})
}

// TestPreemptIsolation: evicting pods from a GPU of another mode does not
// make room for a VM pod.
func TestPreemptIsolation(t *testing.T) {
	victim := vmPod("victim", "", 16)
	ext := newIsolationExtender(t, victim)
	schedule(t, ext, victim, "mps")
	p := vmPod("p", "kata-vgpu", 3)
	args := &extenderv1.ExtenderPreemptionArgs{Pod: p, NodeNameToMetaVictims: map[string]*extenderv1.MetaVictims{
		"mps": {Pods: []*extenderv1.MetaPod{{UID: string(victim.UID)}}},
	}}
	res, err := ext.Preempt(t.Context(), args)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.NodeNameToMetaVictims) != 0 {
		t.Errorf("preemption kept %v for a vgpu pod on an mps node", res.NodeNameToMetaVictims)
	}
}
