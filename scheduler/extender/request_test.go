package extender

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func TestPodRequest(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	sidecar := testutil.Container("side", 2, 0, 0)
	sidecar.RestartPolicy = &always
	fraction := testutil.Container("f", 0, 0, 0)
	fraction.Resources.Limits = v1.ResourceList{api.ResourceGPUMem: resource.MustParse("1500m")}
	requestsOnly := testutil.Container("r", 0, 0, 0)
	requestsOnly.Resources.Requests = v1.ResourceList{api.ResourceGPUMem: resource.MustParse("3")}
	tests := []struct {
		name    string
		pod     *v1.Pod
		models  string
		want    *allocator.PodRequest
		wantErr string
	}{
		{
			name: "no gpu",
			pod:  testutil.Pod("p", testutil.Container("a", 0, 0, 0)),
			want: &allocator.PodRequest{},
		},
		{
			name: "mem core count",
			pod:  testutil.Pod("p", testutil.Container("a", 8, 100, 2), testutil.Container("b", 0, 0, 0)),
			want: &allocator.PodRequest{Containers: []allocator.ContainerRequest{{Name: "a", Slices: 8, Core: 100, Count: 2}}},
		},
		{
			name: "requests without limits",
			pod:  testutil.Pod("p", requestsOnly),
			want: &allocator.PodRequest{Containers: []allocator.ContainerRequest{{Name: "r", Slices: 3}}},
		},
		{
			name:    "fraction",
			pod:     testutil.Pod("p", fraction),
			wantErr: `container "f": gpuslice.io/gpu-mem must be a whole number, got 1500m`,
		},
		{
			name:    "count without mem",
			pod:     testutil.Pod("p", testutil.Container("a", 0, 0, 2)),
			wantErr: `container "a": gpu-count 2 given without gpu-mem`,
		},
		{
			name:    "uneven split",
			pod:     testutil.Pod("p", testutil.Container("a", 3, 0, 2)),
			wantErr: `container "a": gpu-mem 3 cannot be split evenly over 2 GPUs`,
		},
		{
			name:   "models",
			pod:    testutil.Pod("p", testutil.Container("a", 1, 0, 0)),
			models: "A100, H100",
			want:   &allocator.PodRequest{Containers: []allocator.ContainerRequest{{Name: "a", Slices: 1}}, Models: []string{"A100", "H100"}},
		},
		{
			name:    "bad models",
			pod:     testutil.Pod("p", testutil.Container("a", 1, 0, 0)),
			models:  "A100,,",
			wantErr: `annotation gpuslice.io/gpu-models="A100,," has an empty model name`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.models != "" {
				tc.pod.Annotations = map[string]string{api.AnnotationGPUModels: tc.models}
			}
			got, err := PodRequest(tc.pod)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	t.Run("init containers", func(t *testing.T) {
		p := testutil.Pod("p", testutil.Container("app", 2, 0, 0))
		p.Spec.InitContainers = []v1.Container{testutil.Container("init", 4, 0, 0)}
		got, err := PodRequest(p)
		if err != nil {
			t.Fatal(err)
		}
		want := []allocator.ContainerRequest{{Name: "init", Init: true, Slices: 4}, {Name: "app", Slices: 2}}
		if diff := cmp.Diff(want, got.Containers); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// With a sidecar, init containers are summed with the app containers.
		p.Spec.InitContainers = append(p.Spec.InitContainers, sidecar)
		got, err = PodRequest(p)
		if err != nil {
			t.Fatal(err)
		}
		want = []allocator.ContainerRequest{{Name: "init", Slices: 4}, {Name: "side", Slices: 2}, {Name: "app", Slices: 2}}
		if diff := cmp.Diff(want, got.Containers); diff != "" {
			t.Errorf("with sidecar (-want +got):\n%s", diff)
		}
	})
}
