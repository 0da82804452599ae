package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ctr returns a container whose limits ask the given quantities (strings
// in Kubernetes quantity syntax; "" leaves a resource out).
func ctr(name, mem, core, count string) corev1.Container {
	l := corev1.ResourceList{}
	for res, v := range map[corev1.ResourceName]string{ResourceGPUMem: mem, ResourceGPUCore: core, ResourceGPUCount: count} {
		if v != "" {
			l[res] = resource.MustParse(v)
		}
	}
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Limits: l}}
}

func sidecar(c corev1.Container) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func TestParsePodRequest(t *testing.T) {
	requestsOnly := corev1.Container{Name: "r", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{ResourceGPUMem: resource.MustParse("3")}}}
	tests := []struct {
		name        string
		init        []corev1.Container
		app         []corev1.Container
		models      string
		enforcement string
		want        *PodRequest
		wantErr     string
	}{
		{name: "no gpu", app: []corev1.Container{ctr("a", "", "", "")}, want: &PodRequest{}},
		{
			name: "mem core count",
			app:  []corev1.Container{ctr("a", "8", "100", "2"), ctr("b", "", "", "")},
			want: &PodRequest{Containers: []ContainerRequest{{Name: "a", Slices: 8, Core: 100, Count: 2}}},
		},
		{
			name: "requests without limits",
			app:  []corev1.Container{requestsOnly},
			want: &PodRequest{Containers: []ContainerRequest{{Name: "r", Slices: 3}}},
		},
		{
			name: "init and sidecar keep their init flag",
			init: []corev1.Container{ctr("init", "4", "", ""), sidecar(ctr("side", "2", "", ""))},
			app:  []corev1.Container{ctr("app", "2", "", "")},
			want: &PodRequest{Containers: []ContainerRequest{
				{Name: "init", Init: true, Slices: 4}, {Name: "side", Init: true, Sidecar: true, Slices: 2}, {Name: "app", Slices: 2}}},
		},
		{
			name: "restart policy on an app container is not a sidecar",
			app:  []corev1.Container{sidecar(ctr("app", "2", "", ""))},
			want: &PodRequest{Containers: []ContainerRequest{{Name: "app", Slices: 2}}},
		},
		{
			name:   "models",
			app:    []corev1.Container{ctr("a", "1", "", "")},
			models: "A100, H100",
			want:   &PodRequest{Containers: []ContainerRequest{{Name: "a", Slices: 1}}, Models: []string{"A100", "H100"}},
		},
		{name: "fraction", app: []corev1.Container{ctr("f", "1500m", "", "")}, wantErr: `container "f": gpuslice.io/gpu-mem must be a whole number, got 1500m`},
		{name: "nano fraction", app: []corev1.Container{ctr("f", "1000000001n", "", "")}, wantErr: "must be a whole number"},
		{name: "negative", app: []corev1.Container{ctr("f", "-1", "", "")}, wantErr: `container "f": gpuslice.io/gpu-mem must not be negative, got -1`},
		{name: "huge", app: []corev1.Container{ctr("h", "1e19", "", "")}, wantErr: `container "h": gpuslice.io/gpu-mem is too large, got 10e18 (at most 524288)`},
		{name: "huge fraction", app: []corev1.Container{ctr("h", "9300000000000000500m", "", "")}, wantErr: "is too large"},
		{name: "above 9.2e15", app: []corev1.Container{ctr("h", "9300000000000000", "", "")}, wantErr: "is too large"},
		{name: "just too large", app: []corev1.Container{ctr("h", "524289", "", "")}, wantErr: "is too large"},
		{name: "largest", app: []corev1.Container{ctr("h", "524288", "", "128")}, want: &PodRequest{Containers: []ContainerRequest{{Name: "h", Slices: 524288, Count: 128}}}},
		{name: "core too large", app: []corev1.Container{ctr("c", "1", "12801", "")}, wantErr: "gpu-core is too large"},
		{name: "count too large", app: []corev1.Container{ctr("c", "129", "", "129")}, wantErr: "gpu-count is too large"},
		{name: "count without mem", app: []corev1.Container{ctr("a", "", "", "2")}, wantErr: `container "a": gpu-count 2 given without gpu-mem`},
		{name: "core without mem", app: []corev1.Container{ctr("a", "", "50", "")}, wantErr: `container "a": gpu-core 50 given without gpu-mem`},
		{name: "uneven split", app: []corev1.Container{ctr("a", "3", "", "2")}, wantErr: `container "a": gpu-mem 3 cannot be split evenly over 2 GPUs`},
		{name: "core over 100 per GPU", app: []corev1.Container{ctr("a", "2", "300", "2")}, wantErr: "more than 100 per GPU"},
		{name: "slices over a GPU", app: []corev1.Container{ctr("a", "8194", "", "2")}, wantErr: "more than 4096 slices per GPU"},
		{name: "bad init", init: []corev1.Container{ctr("i", "0.5", "", "")}, wantErr: `container "i"`},
		{name: "bad models", app: []corev1.Container{ctr("a", "1", "", "")}, models: "A100,,", wantErr: `annotation gpuslice.io/gpu-models="A100,," has an empty model name`},
		{
			name: "binding enforcement", app: []corev1.Container{ctr("a", "1", "", "")}, enforcement: "binding",
			want: &PodRequest{Containers: []ContainerRequest{{Name: "a", Slices: 1}}, MinEnforcement: EnforcementBinding},
		},
		{name: "bad enforcement", app: []corev1.Container{ctr("a", "1", "", "")}, enforcement: "strict", wantErr: `annotation gpuslice.io/enforcement="strict": must be one of [binding ceiling none]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{InitContainers: tc.init, Containers: tc.app}}
			pod.Annotations = map[string]string{}
			if tc.models != "" {
				pod.Annotations[AnnotationGPUModels] = tc.models
			}
			if tc.enforcement != "" {
				pod.Annotations[AnnotationEnforcement] = tc.enforcement
			}
			got, err := ParsePodRequest(pod)
			if checkErr(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	for phase, want := range map[corev1.PodPhase]bool{
		corev1.PodPending: false, corev1.PodRunning: false, corev1.PodUnknown: false, "": false,
		corev1.PodSucceeded: true, corev1.PodFailed: true,
	} {
		if got := IsTerminal(&corev1.Pod{Status: corev1.PodStatus{Phase: phase}}); got != want {
			t.Errorf("IsTerminal(%q) = %v, want %v", phase, got, want)
		}
	}
}

// FuzzParseContainerRequest feeds arbitrary quantity strings: parsing never
// panics, and an accepted request is whole, within bounds and valid.
func FuzzParseContainerRequest(f *testing.F) {
	for _, s := range []string{"1", "8", "1500m", "-1", "1e19", "9300000000000000", "9223372036854775807", "0.5", "1Ki", "1n", "128"} {
		f.Add(s, "100", "2", false, false)
	}
	f.Fuzz(func(t *testing.T, mem, core, count string, init, side bool) {
		l := corev1.ResourceList{}
		for res, v := range map[corev1.ResourceName]string{ResourceGPUMem: mem, ResourceGPUCore: core, ResourceGPUCount: count} {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return
			}
			l[res] = q
		}
		c := corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Limits: l}}
		if side {
			c = sidecar(c)
		}
		cr, err := ParseContainerRequest(&c, init)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `container "c": `) {
				t.Fatalf("error does not name the container: %v", err)
			}
			return
		}
		if cr.Slices < 0 || cr.Slices > MaxRequestSlices || cr.Core < 0 || cr.Core > MaxRequestCore || cr.Count < 0 || cr.Count > MaxRequestCount {
			t.Fatalf("accepted out-of-bounds request %+v", cr)
		}
		if cr.HasGPU() {
			if err := cr.Validate(); err != nil {
				t.Fatalf("accepted invalid request %+v: %v", cr, err)
			}
		}
		if cr.Sidecar && !init {
			t.Fatalf("app container marked sidecar")
		}
	})
}

// FuzzParseGPUModels feeds arbitrary gpu-models annotations (a user may set
// any value): parsing never panics, an error names the annotation, and an
// accepted list has no empty or untrimmed model name.
func FuzzParseGPUModels(f *testing.F) {
	for _, s := range []string{"A100-SXM4-40GB", "A100-SXM4-40GB, H100-80GB", "", ",", " ", "a,,b", "\x00", strings.Repeat("x,", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		models, err := ParseGPUModels(map[string]string{AnnotationGPUModels: s})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "annotation "+AnnotationGPUModels+"=") {
				t.Fatalf("error does not name the annotation: %v", err)
			}
			return
		}
		if len(models) == 0 {
			t.Fatalf("%q accepted as an empty list", s)
		}
		for _, m := range models {
			if m == "" || m != strings.TrimSpace(m) {
				t.Fatalf("%q accepted with model %q", s, m)
			}
		}
	})
}
