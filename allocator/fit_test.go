package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		req     ContainerRequest
		wantErr string
	}{
		{"mem only", one("c", 4, 0, 0), ""},
		{"mem core count", one("c", 8, 100, 2), ""},
		{"count without mem", one("c", 0, 0, 2), `container "c": gpu-count 2 given without gpu-mem`},
		{"core without mem", one("c", 0, 50, 0), `container "c": gpu-core 50 given without gpu-mem`},
		{"uneven mem", one("c", 5, 0, 2), `container "c": gpu-mem 5 cannot be split evenly over 2 GPUs`},
		{"uneven core", one("c", 4, 51, 2), `container "c": gpu-core 51 cannot be split evenly over 2 GPUs`},
		{"core above one GPU", one("c", 4, 300, 2), `container "c": gpu-core 300 over 2 GPUs is more than 100 per GPU`},
		{"negative", one("c", -1, 0, 0), `container "c": negative GPU request`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Errorf("Validate() = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func TestFitSingleGPU(t *testing.T) {
	tests := []struct {
		name     string
		used     []Units
		req      *PodRequest
		policy   Policy
		want     map[string][]int
		wantCode Code
		reason   Reason
	}{
		{
			name:   "binpack picks the fullest GPU that fits",
			used:   []Units{{Slices: 10}, {Slices: 30}, {Slices: 36}, {}},
			req:    pod(one("a", 4, 0, 0)),
			policy: Binpack{},
			want:   map[string][]int{"a": {2}},
		},
		{
			name:   "spread picks the emptiest GPU",
			used:   []Units{{Slices: 10}, {Slices: 30}, {Slices: 36}, {Slices: 1}},
			req:    pod(one("a", 4, 0, 0)),
			policy: Spread{},
			want:   map[string][]int{"a": {3}},
		},
		{
			name:     "no GPU has the memory now: resolvable",
			used:     []Units{{Slices: 38}, {Slices: 38}, {Slices: 38}, {Slices: 38}},
			req:      pod(one("a", 4, 0, 0)),
			policy:   Binpack{},
			wantCode: Unschedulable,
			reason:   ReasonInsufficientMemory,
		},
		{
			name:     "more per GPU than any GPU has: unresolvable",
			req:      pod(one("a", 41, 0, 0)),
			policy:   Binpack{},
			wantCode: UnschedulableAndUnresolvable,
			reason:   ReasonInsufficientMemory,
		},
		{
			name:     "memory but no core",
			used:     []Units{{Slices: 1, Core: 90}, {Slices: 1, Core: 90}, {Slices: 1, Core: 90}, {Slices: 1, Core: 90}},
			req:      pod(one("a", 4, 20, 0)),
			policy:   Binpack{},
			wantCode: Unschedulable,
			reason:   ReasonInsufficientCore,
		},
		{
			name:     "no slots",
			used:     []Units{{Slots: 4}, {Slots: 4}, {Slots: 4}, {Slots: 4}},
			req:      pod(one("a", 4, 0, 0)),
			policy:   Binpack{},
			wantCode: Unschedulable,
			reason:   ReasonNoSlots,
		},
		{
			name:     "two GPUs with room needed, one has",
			used:     []Units{{Slices: 40}, {Slices: 40}, {Slices: 40}, {}},
			req:      pod(one("a", 8, 0, 2)),
			policy:   Binpack{},
			wantCode: Unschedulable,
			reason:   ReasonNotEnoughGPUs,
		},
		{
			name:     "more GPUs than the node has",
			req:      pod(one("a", 10, 0, 5)),
			policy:   Binpack{},
			wantCode: UnschedulableAndUnresolvable,
			reason:   ReasonNotEnoughGPUs,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode("n", gpus(4, "A100", 40, 4))
			if tc.used != nil {
				copy(n.Used, tc.used)
			}
			before := append([]Units(nil), n.Used...)
			a, st := Fit(n, tc.req, tc.policy)
			if diff := cmp.Diff(before, n.Used); diff != "" {
				t.Fatalf("Fit modified the node (-before +after):\n%s", diff)
			}
			if tc.wantCode != Success {
				if st.IsSuccess() {
					t.Fatalf("Fit succeeded with %v, want %v", devicesOf(a), tc.reason)
				}
				if st.Code != tc.wantCode || st.Reason != tc.reason {
					t.Fatalf("Fit = (%v, %q), want (%v, %q)", st.Code, st.Reason, tc.wantCode, tc.reason)
				}
				return
			}
			if !st.IsSuccess() {
				t.Fatalf("Fit failed: %s", st.Message())
			}
			if diff := cmp.Diff(tc.want, devicesOf(a)); diff != "" {
				t.Errorf("devices (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFitUnhealthyAndModels(t *testing.T) {
	devs := gpus(2, "T4", 16, 4)
	devs[0].Healthy = false
	n := NewNode("n", devs)
	a, st := Fit(n, pod(one("a", 4, 0, 0)), Binpack{})
	if !st.IsSuccess() || a.Containers[0].Devices[0] != 1 {
		t.Fatalf("want the healthy GPU 1, got %v %v", a, st)
	}
	n.Devices[1].Healthy = false
	if _, st := Fit(n, pod(one("a", 4, 0, 0)), Binpack{}); st.IsSuccess() || st.Reason != ReasonNoHealthyGPU || st.Code != UnschedulableAndUnresolvable {
		t.Fatalf("Fit on all-unhealthy node = %v, want %q unresolvable", st, ReasonNoHealthyGPU)
	}
	n = NewNode("n", append(gpus(1, "T4", 16, 4), gpus(1, "A100", 40, 4)...))
	n.Devices[1].Index = 1
	r := pod(one("a", 4, 0, 0))
	r.Models = []string{"A100"}
	if a, st := Fit(n, r, Binpack{}); !st.IsSuccess() || a.Containers[0].Devices[0] != 1 {
		t.Fatalf("model constraint: got %v %v, want device 1", a, st)
	}
	r.Models = []string{"H100"}
	if _, st := Fit(n, r, Binpack{}); st.IsSuccess() || st.Reason != ReasonModelNotAllowed {
		t.Fatalf("Fit with no allowed model = %v, want %q", st, ReasonModelNotAllowed)
	}
}

func TestFitMultiContainerShareAndSplit(t *testing.T) {
	n := NewNode("n", gpus(2, "A100", 40, 48))
	// Two containers that fit together on one GPU share it under binpack.
	a, st := Fit(n, pod(one("a", 10, 30, 0), one("b", 20, 30, 0)), Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	if diff := cmp.Diff(map[string][]int{"a": {0}, "b": {0}}, devicesOf(a)); diff != "" {
		t.Errorf("binpack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Charge{{Device: 0, Units: Units{Slices: 30, Core: 60, Slots: 2}}}, a.Charges); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
	// Two containers that do not fit one GPU together each get their own.
	a, st = Fit(n, pod(one("a", 30, 0, 0), one("b", 30, 0, 0)), Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	got := devicesOf(a)
	if got["a"][0] == got["b"][0] {
		t.Fatalf("containers share a GPU they do not fit on together: %v", got)
	}
	// Three such containers do not fit the node.
	if _, st := Fit(n, pod(one("a", 30, 0, 0), one("b", 30, 0, 0), one("c", 30, 0, 0)), Binpack{}); st.IsSuccess() {
		t.Fatal("three 30-slice containers fit two 40-slice GPUs")
	}
}

func TestFitMultiGPU(t *testing.T) {
	n := NewNode("n", gpus(4, "A100", 40, 48))
	a, st := Fit(n, pod(one("a", 40, 100, 2)), Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	c := a.Containers[0]
	if len(c.Devices) != 2 || c.Devices[0] == c.Devices[1] {
		t.Fatalf("want 2 distinct GPUs, got %v", c.Devices)
	}
	if diff := cmp.Diff(Units{Slices: 20, Core: 50, Slots: 1}, c.PerGPU); diff != "" {
		t.Errorf("per GPU (-want +got):\n%s", diff)
	}
}

func TestFitInitContainers(t *testing.T) {
	n := NewNode("n", gpus(2, "A100", 40, 48))
	n.Used[1] = Units{Slices: 10, Slots: 1}
	// The init container needs 30 slices, the app container 20: the pod
	// holds max(30, 20) on one GPU, not 50.
	r := pod(ContainerRequest{Name: "init", Init: true, Slices: 30}, one("app", 20, 0, 0))
	a, st := Fit(n, r, Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	if diff := cmp.Diff([]Charge{{Device: 1, Units: Units{Slices: 30, Slots: 1}}}, a.Charges); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
	if !a.Containers[0].Init || a.Containers[0].Name != "init" {
		t.Errorf("containers not in spec order (init first): %+v", a.Containers)
	}
	// An init container larger than any GPU's free room fails even though
	// the app container fits.
	r = pod(ContainerRequest{Name: "init", Init: true, Slices: 41}, one("app", 1, 0, 0))
	if _, st := Fit(n, r, Binpack{}); st.IsSuccess() || st.Container != "init" {
		t.Fatalf("Fit = %v, want a failure on the init container", st)
	}
}

func TestFitTopologyPrefersNVLink(t *testing.T) {
	// GPUs 0-1 and 2-3 are NVLink pairs; across pairs is PCIe host bridge.
	n := NewNode("n", gpus(4, "A100", 40, 48))
	n.Link = linked(4, func(i, j int) api.LinkType {
		if i/2 == j/2 {
			return api.LinkNVLink
		}
		return api.LinkHostBridge
	})
	// Make GPUs 1 and 2 the binpack favourites; topology must still win.
	n.Used[1] = Units{Slices: 10}
	n.Used[2] = Units{Slices: 10}
	a, st := Fit(n, pod(one("a", 40, 0, 2)), Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	got := a.Containers[0].Devices
	if got[0]/2 != got[1]/2 {
		t.Fatalf("multi-GPU container got %v across NVLink islands", got)
	}
	if a.TopoRank != api.LinkNVLink.Rank() {
		t.Errorf("TopoRank = %d, want %d", a.TopoRank, api.LinkNVLink.Rank())
	}
	// Node score prefers the node that can offer an NVLink pair.
	m := NewNode("m", gpus(4, "A100", 40, 48))
	m.Link = linked(4, func(i, j int) api.LinkType { return api.LinkCrossSocket })
	b, st := Fit(m, pod(one("a", 40, 0, 2)), Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	if NodeScore(Binpack{}, n, a) <= NodeScore(Binpack{}, m, b) {
		t.Errorf("node with NVLink pair does not score above the cross-socket node")
	}
}

func TestFitDeterministic(t *testing.T) {
	n := NewNode("n", gpus(8, "H100", 80, 48))
	for i := range n.Used {
		n.Used[i] = Units{Slices: int64(i*7) % 80, Slots: 1}
	}
	r := pod(one("a", 8, 0, 0), one("b", 16, 0, 2), ContainerRequest{Name: "i", Init: true, Slices: 4})
	first, st := Fit(n, r, Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	for range 20 {
		again, _ := Fit(n, r, Binpack{})
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("Fit is not deterministic (-first +again):\n%s", diff)
		}
	}
}

func TestAssignmentPlacementRoundTrip(t *testing.T) {
	n := NewNode("n", gpus(4, "A100", 40, 48))
	r := pod(ContainerRequest{Name: "init", Init: true, Slices: 4}, one("a", 8, 50, 2), one("b", 4, 0, 0))
	a, st := Fit(n, r, Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	p := a.Placement(n, testTime)
	back, err := AssignmentFromPlacement(n, p, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.Charges, back.Charges); diff != "" {
		t.Errorf("charges after round trip (-want +got):\n%s", diff)
	}
	p.Containers[1].Devices[0].UUID = "GPU-missing"
	if _, err := AssignmentFromPlacement(n, p, r); err == nil {
		t.Error("a placement naming an unknown GPU was accepted")
	}
}

func TestNewPolicy(t *testing.T) {
	for _, name := range []string{"", PolicyBinpack, PolicySpread} {
		if _, err := NewPolicy(name); err != nil {
			t.Errorf("NewPolicy(%q): %v", name, err)
		}
	}
	if _, err := NewPolicy("nope"); err == nil {
		t.Error("NewPolicy accepted an unknown name")
	}
}

func TestFitMaxGPUsPerContainer(t *testing.T) {
	n := NewNode("n", gpus(4, "A100", 40, 48))
	n.MaxGPUsPerContainer = 1
	if _, st := Fit(n, pod(one("a", 8, 0, 2)), Binpack{}); st.IsSuccess() || st.Reason != ReasonSpanNotAllowed || st.Code != UnschedulableAndUnresolvable {
		t.Fatalf("Fit = %v, want %q unresolvable", st, ReasonSpanNotAllowed)
	}
	if _, st := Fit(n, pod(one("a", 8, 0, 0), one("b", 8, 0, 1)), Binpack{}); !st.IsSuccess() {
		t.Fatalf("single-GPU containers refused: %v", st)
	}
}

func TestMaxTopoRankIsNVLink(t *testing.T) {
	if MaxTopoRank != api.LinkNVLink.Rank() {
		t.Fatalf("MaxTopoRank = %d, api.LinkNVLink.Rank() = %d", MaxTopoRank, api.LinkNVLink.Rank())
	}
}
