package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sidecarReq(name string, slices int64) ContainerRequest {
	return ContainerRequest{Name: name, Init: true, Sidecar: true, Slices: slices}
}

func initReq(name string, slices int64) ContainerRequest {
	return ContainerRequest{Name: name, Init: true, Slices: slices}
}

// TestFitSidecars checks the Kubernetes sidecar accounting on one GPU of
// 40 slices: a sidecar's share lasts for the pod's life and adds to the app
// containers and to every init container that starts after it.
func TestFitSidecars(t *testing.T) {
	tests := []struct {
		name string
		used int64 // slices already used on the GPU
		req  *PodRequest
		// want is the pod's charge in slices, or -1 when it must not fit.
		want int64
		// wantFail names the container reported on failure.
		wantFail string
	}{
		{name: "sidecar adds to app", req: pod(sidecarReq("side", 4), one("app", 10, 0, 0)), want: 14},
		{name: "init before sidecar runs alone", req: pod(initReq("init", 30), sidecarReq("side", 4), one("app", 10, 0, 0)), want: 30},
		{name: "init after sidecar runs beside it", req: pod(sidecarReq("side", 4), initReq("init", 30), one("app", 10, 0, 0)), want: 34},
		{name: "app sum with sidecar dominates", req: pod(initReq("init", 12), sidecarReq("side", 4), one("app", 10, 0, 0)), want: 14},
		{name: "sidecar and app do not fit together", used: 30, req: pod(sidecarReq("side", 4), one("app", 8, 0, 0)), want: -1},
		{
			// 10 free: the init alone (8) would fit, but the sidecar started
			// before it still holds 4.
			name: "init beside sidecar does not fit", used: 30,
			req:  pod(sidecarReq("side", 4), initReq("init", 8), one("app", 1, 0, 0)),
			want: -1, wantFail: "init",
		},
		{name: "same init before the sidecar fits", used: 30, req: pod(initReq("init", 8), sidecarReq("side", 4), one("app", 1, 0, 0)), want: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode("n", gpus(1, "A100", 40, 48))
			n.Used[0] = Units{Slices: tc.used}
			a, st := Fit(n, tc.req, Binpack{})
			if tc.want < 0 {
				if st.IsSuccess() {
					t.Fatalf("Fit succeeded with charges %+v, want a failure", a.Charges)
				}
				if tc.wantFail != "" && st.Container != tc.wantFail {
					t.Errorf("failing container = %q, want %q", st.Container, tc.wantFail)
				}
				return
			}
			if !st.IsSuccess() {
				t.Fatal(st)
			}
			if len(a.Charges) != 1 || a.Charges[0].Units.Slices != tc.want {
				t.Errorf("charges = %+v, want %d slices", a.Charges, tc.want)
			}
			// Containers are reported in pod spec order, each with its real
			// init flag, and the placement keeps it.
			var names []string
			for i, c := range a.Containers {
				names = append(names, c.Name)
				rc := tc.req.Containers[i]
				if c.Init != rc.Init || c.Sidecar != rc.Sidecar {
					t.Errorf("container %q: init %v sidecar %v, want %v %v", c.Name, c.Init, c.Sidecar, rc.Init, rc.Sidecar)
				}
			}
			var want []string
			for _, c := range tc.req.Containers {
				want = append(want, c.Name)
			}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Errorf("container order (-want +got):\n%s", diff)
			}
			p := a.Placement(n, testTime)
			for i, c := range p.Containers {
				if c.Init != tc.req.Containers[i].Init {
					t.Errorf("placement container %q init = %v, want %v", c.Name, c.Init, tc.req.Containers[i].Init)
				}
			}
			back, err := AssignmentFromPlacement(n, p, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(a.Charges, back.Charges); diff != "" {
				t.Errorf("charges rebuilt from the placement (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFitSidecarsSpread checks a sidecar on one GPU holds no room on
// another: the init container after it may run alone on a GPU the sidecar
// is not on.
func TestFitSidecarsSpread(t *testing.T) {
	n := NewNode("n", gpus(2, "A100", 40, 48))
	n.Used[0] = Units{Slices: 30}
	r := pod(sidecarReq("side", 8), initReq("init", 36), one("app", 1, 0, 0))
	a, st := Fit(n, r, Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	want := []Charge{{Device: 0, Units: Units{Slices: 9, Slots: 2}}, {Device: 1, Units: Units{Slices: 36, Slots: 1}}}
	if diff := cmp.Diff(want, a.Charges); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
}
