package kubectl

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// now is the fixed time of every test.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// gpu returns a healthy GPU of the given model and slices.
func gpu(i int, uuid, model string, slices int64, mode api.IsolationMode) api.GPU {
	return api.GPU{Index: i, UUID: uuid, Model: model, MemoryMiB: slices * 1024, Slices: slices, Slots: 4,
		CoreUnits: 100, NUMANode: i % 2, Healthy: true, Isolation: mode}
}

// vgpu returns a healthy vGPU GPU of memMiB cut into instances of
// instMiB of the given type.
func vgpu(i int, uuid, vgpuType string, memMiB, instMiB int64) api.GPU {
	slots := memMiB / instMiB
	return api.GPU{Index: i, UUID: uuid, Model: "Tesla T4", MemoryMiB: memMiB, Slices: slots * (instMiB / 1024), Slots: slots,
		CoreUnits: 100, NUMANode: 0, Healthy: true, Isolation: api.IsolationVGPU, VGPUType: vgpuType, InstanceMiB: instMiB}
}

// withRuntimeClass sets the pod's runtime class.
func withRuntimeClass(p *corev1.Pod, rc string) *corev1.Pod {
	p.Spec.RuntimeClassName = &rc
	return p
}

func unhealthy(g api.GPU, reason string) api.GPU {
	g.Healthy, g.Reason = false, reason
	return g
}

// gpuNode returns a node whose inventory lists gpus.
func gpuNode(t *testing.T, name string, maxSpan int, gpus ...api.GPU) *corev1.Node {
	t.Helper()
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024, MaxGPUsPerContainer: maxSpan, GPUs: gpus}
	s, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n := plainNode(name)
	n.Annotations = map[string]string{api.AnnotationInventory: s}
	return n
}

func plainNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
}

// gpuPod returns a pending pod whose one container "main" asks for slices
// and core on one GPU.
func gpuPod(name string, slices, core int64) *corev1.Pod {
	limits := corev1.ResourceList{api.ResourceGPUMem: *resource.NewQuantity(slices, resource.DecimalSI)}
	if core > 0 {
		limits[api.ResourceGPUCore] = *resource.NewQuantity(core, resource.DecimalSI)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{Limits: limits}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
}

// place binds the pod to node with its one container on the given GPU, and
// records the allocation when allocated is set; allocatedOn, when not
// empty, records it on another GPU instead.
func place(t *testing.T, p *corev1.Pod, node, uuid string, index int, allocated bool, allocatedOn ...api.DeviceShare) *corev1.Pod {
	t.Helper()
	req, err := api.ParsePodRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	u := req.Containers[0].PerGPU()
	share := api.DeviceShare{UUID: uuid, Index: index, Slices: u.Slices, Core: u.Core, Slots: u.Slots}
	pl := &api.Placement{Version: api.PlacementVersion, Node: node, AssignedAt: now.Add(-5 * time.Minute),
		Containers: []api.ContainerPlacement{{Name: "main", Devices: []api.DeviceShare{share}}}}
	s, err := pl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.NodeName = node
	p.Status.Phase = corev1.PodRunning
	p.Annotations[api.AnnotationPlacement] = s
	if allocated {
		a := *pl
		a.AllocatedAt = now.Add(-4 * time.Minute)
		if len(allocatedOn) > 0 {
			a.Containers = []api.ContainerPlacement{{Name: "main", Devices: allocatedOn}}
		}
		s, err := a.Encode()
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations[api.AnnotationAllocated] = s
	}
	return p
}

// cluster is the test cluster:
//
//   - gpu-a: two A100 (40 slices, MPS, one GPU per container); GPU 1 is
//     unhealthy. ml/train holds 20 slices and 50 core of GPU 0, allocated.
//   - gpu-b: two T4 (16 slices, no isolation). ml/serve holds 4 slices of
//     GPU 0, not allocated yet; ml/moved is placed on GPU 1 but allocated
//     on GPU 0.
//   - gpu-c: one free A100, cordoned.
//   - gpu-v: one T4 of four GRID T4-4Q vGPU instances (4 GiB each); ml/vm
//     (runtime class kata-vgpu) asks 3 slices and is charged a whole
//     instance, allocated.
//   - cpu-1: no GPUs.
//   - pending: ml/big (30 slices), ml/a100 (10 slices, A100 only), ml/small
//     (2 slices), ml/web, which asks for no GPU, and ml/vm-big (runtime
//     class kata-vgpu, 6 slices: more than a T4-4Q instance).
func cluster(t *testing.T) []runtime.Object {
	t.Helper()
	gpuC := gpuNode(t, "gpu-c", 0, gpu(0, "GPU-c0", "A100", 40, api.IsolationMPS))
	gpuC.Spec.Unschedulable = true
	a100 := gpuPod("a100", 10, 0)
	a100.Annotations[api.AnnotationGPUModels] = "A100"
	big := gpuPod("big", 30, 0)
	big.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/4 nodes are available: 1 node(s) were unschedulable, 3 gpuslice: no node has room."}}
	web := gpuPod("web", 0, 0)
	web.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	return []runtime.Object{
		gpuNode(t, "gpu-a", 1, gpu(0, "GPU-a0", "A100", 40, api.IsolationMPS),
			unhealthy(gpu(1, "GPU-a1", "A100", 40, api.IsolationMPS), "XID 79: GPU has fallen off the bus")),
		gpuNode(t, "gpu-b", 0, gpu(0, "GPU-b0", "T4", 16, api.IsolationNone), gpu(1, "GPU-b1", "T4", 16, api.IsolationNone)),
		gpuC,
		gpuNode(t, "gpu-v", 0, vgpu(0, "GPU-v0", "GRID T4-4Q", 16384, 4096)),
		plainNode("cpu-1"),
		place(t, gpuPod("train", 20, 50), "gpu-a", "GPU-a0", 0, true),
		place(t, gpuPod("serve", 4, 0), "gpu-b", "GPU-b0", 0, false),
		place(t, gpuPod("moved", 8, 0), "gpu-b", "GPU-b1", 1, true, api.DeviceShare{UUID: "GPU-b0", Index: 0, Slices: 8, Slots: 1}),
		place(t, withRuntimeClass(gpuPod("vm", 3, 0), "kata-vgpu"), "gpu-v", "GPU-v0", 0, true),
		withRuntimeClass(gpuPod("vm-big", 6, 0), "kata-vgpu"),
		big,
		a100,
		gpuPod("small", 2, 0),
		web,
	}
}
