package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
)

// What the cache and bind read of a pod or node is the same on the slim
// copy as on the full object, and everything else is gone.
func TestSlim(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	rc := "kata-vgpu"
	now := metav1.Now()
	gpu := func(mem, core int64) v1.ResourceRequirements {
		l := v1.ResourceList{
			api.ResourceGPUMem: *resource.NewQuantity(mem, resource.DecimalSI), api.ResourceGPUCore: *resource.NewQuantity(core, resource.DecimalSI),
			v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Gi"),
		}
		return v1.ResourceRequirements{Limits: l, Requests: l}
	}
	full := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "ns", UID: "uid-1", ResourceVersion: "42", DeletionTimestamp: &now,
			Labels:        map[string]string{"app": "x"},
			Annotations:   map[string]string{api.AnnotationPlacement: "{}", api.AnnotationGPUModels: "Tesla T4", "other.io/big": "xxxxxxxx"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: v1.PodSpec{
			NodeName: "n1", SchedulerName: "gpu", RuntimeClassName: &rc,
			Volumes:        []v1.Volume{{Name: "data"}},
			InitContainers: []v1.Container{{Name: "side", RestartPolicy: &always, Image: "side:1", Resources: gpu(2, 10)}},
			Containers:     []v1.Container{{Name: "main", Image: "main:1", Env: []v1.EnvVar{{Name: "A", Value: "b"}}, Resources: gpu(8, 50)}, {Name: "cpu", Image: "cpu:1"}},
		},
		Status: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{{Type: v1.PodReady}}},
	}
	got, err := slim(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*v1.Pod)
	wantReq, err := api.ParsePodRequest(full)
	if err != nil {
		t.Fatal(err)
	}
	gotReq, err := api.ParsePodRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantReq, gotReq); diff != "" {
		t.Errorf("request read from the slim pod (-full +slim):\n%s", diff)
	}
	if p.Name != "p" || p.Namespace != "ns" || p.UID != "uid-1" || p.ResourceVersion != "42" || p.DeletionTimestamp == nil ||
		p.Spec.NodeName != "n1" || p.Spec.SchedulerName != "gpu" || p.Spec.RuntimeClassName == nil || *p.Spec.RuntimeClassName != rc ||
		api.IsTerminal(p) != api.IsTerminal(full) {
		t.Errorf("slim pod lost what the cache reads: %+v", p)
	}
	wantAnn := map[string]string{api.AnnotationPlacement: "{}", api.AnnotationGPUModels: "Tesla T4"}
	if diff := cmp.Diff(wantAnn, p.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if p.Labels != nil || p.ManagedFields != nil || p.Spec.Volumes != nil || p.Spec.Containers[0].Image != "" || p.Spec.Containers[0].Env != nil ||
		p.Status.Conditions != nil || len(p.Spec.Containers[0].Resources.Limits) != 2 || p.Spec.Containers[1].Resources.Limits != nil {
		t.Errorf("slim pod kept what nothing reads: %+v", p)
	}

	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "n-uid", ResourceVersion: "7", Annotations: map[string]string{api.AnnotationInventory: "{}", "node.alpha/x": "y"}},
		Status:     v1.NodeStatus{Images: []v1.ContainerImage{{Names: []string{"a"}}}},
	}
	gotNode, err := slim(node)
	if err != nil {
		t.Fatal(err)
	}
	wantNode := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "n-uid", ResourceVersion: "7", Annotations: map[string]string{api.AnnotationInventory: "{}"}}}
	if diff := cmp.Diff(wantNode, gotNode); diff != "" {
		t.Errorf("slim node (-want +got):\n%s", diff)
	}
	other := &v1.Service{}
	if got, _ := slim(other); got != other {
		t.Errorf("a non-pod, non-node object was changed")
	}
}
