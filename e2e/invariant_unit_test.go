package e2e

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// TestLedger checks the e2e tests' own over-commit accounting, without a
// cluster.
func TestLedger(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024, GPUs: []api.GPU{
		{Index: 0, UUID: "g0", Slices: 16, CoreUnits: 100, Slots: 4, Healthy: true},
		{Index: 1, UUID: "g1", Slices: 16, CoreUnits: 100, Slots: 4, Healthy: true},
		// Two 8 GiB vGPU instances.
		{Index: 2, UUID: "v2", MemoryMiB: 16384, Slices: 16, CoreUnits: 100, Slots: 2, Healthy: true, Isolation: api.IsolationVGPU, InstanceMiB: 8192},
	}}
	raw, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	node := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{api.AnnotationInventory: raw}}}
	share := func(uuid string, s int64) api.DeviceShare { return api.DeviceShare{UUID: uuid, Slices: s, Slots: 1} }
	pod := func(uid string, inits []corev1.Container, cs ...api.ContainerPlacement) corev1.Pod {
		pl := api.Placement{Version: api.PlacementVersion, Node: "n", Containers: cs}
		s, err := pl.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid), Annotations: map[string]string{api.AnnotationPlacement: s}},
			Spec:       corev1.PodSpec{NodeName: "n", InitContainers: inits},
		}
	}
	for _, tc := range []struct {
		name    string
		pods    []corev1.Pod
		trusted map[types.UID]string
		want    map[string]units
		over    int
	}{
		{
			name: "app containers add up",
			pods: []corev1.Pod{pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g0", 6)}},
				api.ContainerPlacement{Name: "y", Devices: []api.DeviceShare{share("g0", 6)}})},
			want: map[string]units{"g0": {12, 0, 2}},
		},
		{
			name: "regular init container: the larger",
			pods: []corev1.Pod{pod("a", []corev1.Container{{Name: "i"}},
				api.ContainerPlacement{Name: "i", Init: true, Devices: []api.DeviceShare{share("g0", 10)}},
				api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g0", 6)}})},
			want: map[string]units{"g0": {10, 0, 1}},
		},
		{
			name: "sidecar adds to the app containers",
			pods: []corev1.Pod{pod("a", []corev1.Container{{Name: "s", RestartPolicy: &always}},
				api.ContainerPlacement{Name: "s", Init: true, Devices: []api.DeviceShare{share("g0", 10)}},
				api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g0", 10)}})},
			want: map[string]units{"g0": {20, 0, 2}},
			over: 1,
		},
		{
			name: "vanished GPU: the other GPU keeps its charge",
			pods: []corev1.Pod{pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g0", 8), share("gone", 8)}})},
			want: map[string]units{"g0": {8, 0, 1}},
		},
		{
			name: "trusted placement overrides a forged one",
			pods: []corev1.Pod{
				pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("gone", 12)}}),
				pod("b", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g1", 8)}}),
			},
			trusted: map[types.UID]string{"a": mustEncode(t, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g1", 12)}})},
			want:    map[string]units{"g1": {20, 0, 2}},
			over:    1,
		},
		{
			name: "vGPU: each container holds a whole instance",
			pods: []corev1.Pod{
				pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("v2", 3)}}),
				pod("b", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("v2", 3)}}),
			},
			want: map[string]units{"v2": {16, 100, 2}},
		},
		{
			name: "vGPU: a third 3 GiB container over-commits two 8 GiB instances",
			pods: []corev1.Pod{
				pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("v2", 3)}},
					api.ContainerPlacement{Name: "y", Devices: []api.DeviceShare{share("v2", 3)}}),
				pod("b", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("v2", 3)}}),
			},
			want: map[string]units{"v2": {24, 150, 3}},
			over: 1,
		},
		{
			name:    "trusted empty drops a forged placement",
			pods:    []corev1.Pod{pod("a", nil, api.ContainerPlacement{Name: "x", Devices: []api.DeviceShare{share("g0", 16)}})},
			trusted: map[types.UID]string{"a": ""},
			want:    map[string]units{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := buildLedger([]corev1.Node{node}, tc.pods, tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, l.used, cmp.AllowUnexported(units{})); diff != "" {
				t.Errorf("charges (-want +got):\n%s", diff)
			}
			if got := len(l.overcommitted()); got != tc.over {
				t.Errorf("%d over-committed GPUs, want %d: %v", got, tc.over, l.overcommitted())
			}
		})
	}
}

func mustEncode(t *testing.T, cs ...api.ContainerPlacement) string {
	t.Helper()
	s, err := (&api.Placement{Version: api.PlacementVersion, Node: "n", Containers: cs}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
