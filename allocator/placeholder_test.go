package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

// TestPlaceholders checks a pod on two GPUs, one of which vanished from the
// inventory: the remaining GPU keeps its charge, the vanished one becomes a
// placeholder that keeps its own, and no new pod is put on the placeholder.
func TestPlaceholders(t *testing.T) {
	full := NewNode("n", gpus(2, "A100", 40, 4))
	r := pod(one("app", 40, 0, 2))
	a, st := Fit(full, r, Binpack{})
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	p := a.Placement(full, testTime)

	// GPU 1 vanishes: the new inventory lists only GPU 0.
	n := NewNode("n", gpus(1, "A100", 40, 4))
	n.Link = [][]int8{{0}}
	if _, err := AssignmentFromPlacement(n, p, r); err == nil {
		t.Fatal("a placement naming a vanished GPU was rebuilt without a placeholder")
	}
	last := func(uuid string) Units {
		if uuid == full.Devices[1].UUID {
			return full.Devices[1].Capacity
		}
		return Units{}
	}
	if got := n.AddPlaceholders(p, last); got != 1 {
		t.Fatalf("AddPlaceholders = %d, want 1", got)
	}
	if got := n.AddPlaceholders(p, last); got != 0 {
		t.Fatalf("second AddPlaceholders = %d, want 0", got)
	}
	back, err := AssignmentFromPlacement(n, p, r)
	if err != nil {
		t.Fatal(err)
	}
	n.Apply(back.Charges, 1)
	want := []Charge{{Device: 0, Units: Units{Slices: 20, Slots: 1}}, {Device: 1, Units: Units{Slices: 20, Slots: 1}}}
	if diff := cmp.Diff(want, back.Charges); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
	ph := n.Devices[1]
	if !ph.Placeholder || ph.Healthy || ph.UUID != full.Devices[1].UUID || ph.Capacity != full.Devices[1].Capacity {
		t.Errorf("placeholder = %+v", ph)
	}
	if len(n.Link) != 2 || len(n.Link[0]) != 2 || len(n.Link[1]) != 2 {
		t.Errorf("link matrix not grown: %v", n.Link)
	}
	// GPU 0 has 20 slices left; a 30-slice pod must not land on the
	// placeholder, and a 20-slice one goes to GPU 0.
	if _, st := Fit(n, pod(one("x", 30, 0, 0)), Binpack{}); st.IsSuccess() {
		t.Error("a new pod was placed on the placeholder")
	}
	b, st := Fit(n, pod(one("y", 20, 0, 0)), Binpack{})
	if !st.IsSuccess() || b.Containers[0].Devices[0] != 0 {
		t.Errorf("Fit = %v %v, want GPU 0", b, st)
	}
	// A placeholder of unknown capacity is not reported as over-committed.
	m := NewNode("m", nil)
	m.AddPlaceholders(p, func(string) Units { return Units{} })
	ma, err := AssignmentFromPlacement(m, p, r)
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(ma.Charges, 1)
	if err := m.Overcommitted(); err != nil {
		t.Errorf("placeholder reported over-committed: %v", err)
	}
}

// TestAddPlaceholderDoesNotAliasClone checks a placeholder added to a Clone
// leaves the original node alone.
func TestAddPlaceholderDoesNotAliasClone(t *testing.T) {
	n := NewNode("n", make([]Device, 1, 4))
	n.Link = [][]int8{make([]int8, 1, 4)}
	c := n.Clone()
	c.AddPlaceholder("GPU-x", 3, Units{})
	if len(n.Devices) != 1 || n.Devices[:2][1].UUID != "" || len(n.Link) != 1 || n.Link[0][:2][1] != 0 {
		t.Errorf("original changed: %+v", n)
	}
}

// TestAssignmentFromPlacementOrder checks the charge rule follows the
// request's order: a placement that lists the sidecar after the init
// container is still charged as "sidecar first".
func TestAssignmentFromPlacementOrder(t *testing.T) {
	n := NewNode("n", gpus(1, "A100", 40, 4))
	r := pod(sidecarReq("side", 4), initReq("init", 30), one("app", 1, 0, 0))
	p := &api.Placement{Version: api.PlacementVersion, Node: "n", Containers: []api.ContainerPlacement{
		{Name: "app", Devices: []api.DeviceShare{{UUID: n.Devices[0].UUID, Slices: 1, Slots: 1}}},
		{Name: "init", Init: true, Devices: []api.DeviceShare{{UUID: n.Devices[0].UUID, Slices: 30, Slots: 1}}},
		{Name: "side", Init: true, Devices: []api.DeviceShare{{UUID: n.Devices[0].UUID, Slices: 4, Slots: 1}}},
	}}
	a, err := AssignmentFromPlacement(n, p, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Charge{{Device: 0, Units: Units{Slices: 34, Slots: 2}}}, a.Charges); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
}
