package allocator

import "testing"

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
