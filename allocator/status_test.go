package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

func TestStatusMessage(t *testing.T) {
	tests := []struct {
		st   *Status
		want string
	}{
		{nil, ""},
		{&Status{Reason: ReasonNoGPUs}, "node has no gpuslice GPUs"},
		{&Status{Reason: ReasonNoHealthyGPU, Container: "c", Unhealthy: 2}, `no healthy GPU (container "c": 2 unhealthy)`},
		{&Status{Reason: ReasonSpanNotAllowed, Container: "c", GPUs: 2, SpanAllowed: 1}, `container spans more GPUs than the node's isolation allows (container "c": asks for 2 GPUs, the node's isolation allows 1 per container)`},
		{&Status{Reason: ReasonInsufficientMemory, Container: "c", GPUs: 1, PerGPU: Units{Slices: 20, Slots: 1}},
			`insufficient gpu-mem on every GPU (container "c": needs 1 GPU(s) with 20 slices, 0 core, 1 slot free; 0 have the slices)`},
		{&Status{Reason: ReasonNotEnoughGPUs, Container: "c", GPUs: 2, PerGPU: Units{Slices: 4, Core: 50, Slots: 1}, WithSlices: 1},
			`not enough GPUs with room (container "c": needs 2 GPU(s) with 4 slices, 50 core, 1 slot free; 1 have the slices)`},
	}
	for _, tc := range tests {
		if got := tc.st.Message(); got != tc.want {
			t.Errorf("Message() = %q, want %q", got, tc.want)
		}
	}
}

// TestFailureAllocatesNoText checks that a failing Fit formats nothing:
// the numbers stay in the Status until Message is called.
func TestFailureAllocatesNoText(t *testing.T) {
	n := NewNode("n", gpus(8, "A100", 40, 4))
	for i := range n.Used {
		n.Used[i] = Units{Slices: 39}
	}
	r := pod(one("c", 20, 0, 0))
	var f Fitter
	f.Fit(n, r, Binpack{}) // warm the buffers
	allocs := testing.AllocsPerRun(100, func() { f.Fit(n, r, Binpack{}) })
	// Two Status values (the live and the empty-node attempt); no strings.
	if allocs > 2 {
		t.Errorf("a failing Fit allocates %.0f times, want at most 2", allocs)
	}
}

// TestFitReasonNamesFirstBlocker: each node's reason names the check that
// really stopped the pod there, in Fit's order (health, model, gpu-mem,
// gpu-core, slots, GPU count), and its detail speaks of that check: a
// model-restricted pod is not told "0 have the slices" about a node with
// plenty of room.
func TestFitReasonNamesFirstBlocker(t *testing.T) {
	mixed := func() []Device {
		d := append(gpus(2, "T4", 16, 4), gpus(2, "A100", 40, 4)...)
		for i := range d {
			d[i].Index = i
		}
		return d
	}
	withModels := func(r *PodRequest, m ...string) *PodRequest { r.Models = m; return r }
	tests := []struct {
		name     string
		devices  func() []Device
		used     Units // on every device
		req      *PodRequest
		wantCode Code
		want     string
	}{
		{
			name:     "model not allowed on an empty node",
			devices:  func() []Device { return gpus(4, "T4", 16, 4) },
			req:      withModels(pod(one("main", 10, 0, 0)), "A100"),
			wantCode: UnschedulableAndUnresolvable,
			want:     `no GPU of an allowed model (container "main": 4 healthy GPU(s) of other models)`,
		},
		{
			name: "model not allowed, the rest unhealthy",
			devices: func() []Device {
				d := mixed()
				d[2].Healthy, d[3].Healthy = false, false
				return d
			},
			req:      withModels(pod(one("main", 1, 0, 0)), "A100"),
			wantCode: UnschedulableAndUnresolvable,
			want:     `no GPU of an allowed model (container "main": 2 healthy GPU(s) of other models, 2 unhealthy)`,
		},
		{
			name: "unhealthy only",
			devices: func() []Device {
				d := gpus(2, "A100", 40, 4)
				d[0].Healthy, d[1].Healthy = false, false
				return d
			},
			req:      pod(one("main", 1, 0, 0)),
			wantCode: UnschedulableAndUnresolvable,
			want:     `no healthy GPU (container "main": 2 unhealthy)`,
		},
		{
			name:     "too few GPUs of the allowed model for a multi-GPU container",
			devices:  mixed,
			req:      withModels(pod(one("main", 30, 0, 3)), "A100"),
			wantCode: UnschedulableAndUnresolvable,
			want:     `too few healthy GPUs of an allowed model (container "main": asks for 3 GPUs, 2 are healthy and of an allowed model (2 of other models, 0 unhealthy))`,
		},
		{
			name:     "allowed model full: the memory is the blocker",
			devices:  mixed,
			used:     Units{Slices: 30},
			req:      withModels(pod(one("main", 20, 0, 0)), "A100"),
			wantCode: Unschedulable,
			want:     `insufficient gpu-mem on every GPU (container "main": needs 1 GPU(s) with 20 slices, 0 core, 1 slot free; 0 have the slices)`,
		},
		{
			name:     "core after memory",
			devices:  func() []Device { return gpus(2, "A100", 40, 4) },
			used:     Units{Core: 80},
			req:      pod(one("main", 4, 50, 0)),
			wantCode: Unschedulable,
			want:     `insufficient gpu-core on every GPU with enough gpu-mem (container "main": needs 1 GPU(s) with 4 slices, 50 core, 1 slot free; 2 have the slices)`,
		},
		{
			name: "binding required, the GPUs enforce a ceiling",
			devices: func() []Device {
				return enforcing(gpus(2, "A100", 40, 4), api.EnforcementCeiling, api.EnforcementCeiling)
			},
			req:      requiring(pod(one("main", 10, 0, 0)), api.EnforcementBinding),
			wantCode: UnschedulableAndUnresolvable,
			want:     `no GPU enforces the isolation the pod requires (container "main": requires binding enforcement, 2 GPU(s) of an allowed model enforce less)`,
		},
		{
			name: "binding required, one of two GPUs binds",
			devices: func() []Device {
				return enforcing(gpus(2, "A100", 40, 4), api.EnforcementBinding, api.EnforcementCeiling)
			},
			req:      requiring(pod(one("main", 20, 0, 2)), api.EnforcementBinding),
			wantCode: UnschedulableAndUnresolvable,
			want:     `too few healthy GPUs of an allowed model (container "main": asks for 2 GPUs, 1 are healthy and of an allowed model (0 of other models, 0 unhealthy); 1 enforce less than binding)`,
		},
		{
			name:     "more GPUs than the node has",
			devices:  func() []Device { return gpus(2, "A100", 40, 4) },
			req:      pod(one("main", 8, 0, 4)),
			wantCode: UnschedulableAndUnresolvable,
			want:     `not enough GPUs with room (container "main": needs 4 GPU(s) with 2 slices, 0 core, 1 slot free; 2 have the slices)`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode("n", tc.devices())
			for i := range n.Used {
				n.Used[i] = tc.used
			}
			_, st := Fit(n, tc.req, Binpack{})
			if st.IsSuccess() {
				t.Fatal("Fit succeeded")
			}
			if diff := cmp.Diff(struct {
				Code Code
				Msg  string
			}{tc.wantCode, tc.want}, struct {
				Code Code
				Msg  string
			}{st.Code, st.Message()}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func enforcing(d []Device, e ...api.Enforcement) []Device {
	for i := range d {
		d[i].Enforcement = e[i]
	}
	return d
}

func requiring(r *PodRequest, e api.Enforcement) *PodRequest { r.MinEnforcement = e; return r }

// TestFitEnforcement: a pod that requires an enforcement level gets only
// GPUs that enforce at least that much; others are not touched.
func TestFitEnforcement(t *testing.T) {
	tests := []struct {
		name string
		enf  []api.Enforcement
		min  api.Enforcement
		want string // UUID chosen; "" when the pod does not fit
	}{
		{"binding on the binding GPU", []api.Enforcement{api.EnforcementCeiling, api.EnforcementBinding}, api.EnforcementBinding, "GPU-A100-1"},
		{"ceiling accepts binding", []api.Enforcement{api.EnforcementNone, api.EnforcementBinding}, api.EnforcementCeiling, "GPU-A100-1"},
		{"none accepts anything", []api.Enforcement{api.EnforcementNone, api.EnforcementNone}, api.EnforcementNone, "GPU-A100-0"},
		{"no requirement", []api.Enforcement{api.EnforcementNone, api.EnforcementBinding}, "", "GPU-A100-0"},
		{"nothing binds", []api.Enforcement{api.EnforcementCeiling, api.EnforcementNone}, api.EnforcementBinding, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNode("n", enforcing(gpus(2, "A100", 40, 4), tc.enf...))
			a, st := Fit(n, requiring(pod(one("main", 10, 0, 0)), tc.min), Binpack{})
			got := ""
			if st.IsSuccess() {
				got = n.Devices[a.Containers[0].Devices[0]].UUID
			}
			if got != tc.want {
				t.Errorf("chose %q (status %v), want %q", got, st, tc.want)
			}
		})
	}
}
