package allocator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

// instGPU is an inventory GPU of isolation mode m with memMiB of memory
// in instances of instMiB (one instance of the whole memory for
// passthrough), on a node of 1024 MiB slices; shared modes get memMiB in
// slices and 8 slots.
func instGPU(i int, m api.IsolationMode, memMiB, instMiB int64) api.GPU {
	g := api.GPU{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", m, i), Model: "T4", MemoryMiB: memMiB, CoreUnits: 100,
		NUMANode: 0, Healthy: true, Isolation: m}
	switch m {
	case api.IsolationVGPU, api.IsolationPassthrough:
		g.InstanceMiB = instMiB
		g.Slots = memMiB / instMiB
		g.Slices = g.Slots * (instMiB / 1024)
		if m == api.IsolationVGPU {
			g.VGPUType = fmt.Sprintf("GRID T4-%dQ", instMiB/1024)
		}
	default:
		g.Slices, g.Slots = memMiB/1024, 8
	}
	return g
}

// instNode builds a node from an inventory of the GPUs, with the links
// given per pair (pairs not listed are cross-socket) when links is not nil.
func instNode(t *testing.T, name string, links map[[2]int]api.LinkType, gs ...api.GPU) *Node {
	t.Helper()
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024, GPUs: gs}
	if links != nil {
		for i := range inv.GPUs {
			for j := range inv.GPUs {
				if i == j {
					continue
				}
				l, ok := links[[2]int{min(i, j), max(i, j)}]
				if !ok {
					l = api.LinkCrossSocket
				}
				inv.GPUs[i].Links = append(inv.GPUs[i].Links, api.Link{Peer: j, Type: l})
			}
		}
	}
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	return NodeFromInventory(name, inv)
}

// vmPod is a pod of the given sandbox mode.
func vmPod(sandbox api.IsolationMode, cs ...ContainerRequest) *PodRequest {
	return &PodRequest{Containers: cs, Sandbox: sandbox}
}

// place fits r on n and applies the charges, failing the test when the
// node is over-committed afterwards.
func place(t *testing.T, n *Node, r *PodRequest) (*Assignment, *Status) {
	t.Helper()
	a, st := Fit(n, r, Binpack{})
	if !st.IsSuccess() {
		return nil, st
	}
	n.Apply(a.Charges, 1)
	if err := n.Overcommitted(); err != nil {
		t.Fatal(err)
	}
	return a, nil
}

func TestNodeFromInventoryInstances(t *testing.T) {
	n := instNode(t, "n", nil,
		instGPU(0, api.IsolationVGPU, 16384, 4096),
		instGPU(1, api.IsolationPassthrough, 16384, 16384),
		instGPU(2, api.IsolationMPS, 16384, 0))
	type dev struct {
		Isolation api.IsolationMode
		Instance  Units
	}
	var got []dev
	for _, d := range n.Devices {
		got = append(got, dev{d.Isolation, d.Instance})
	}
	want := []dev{
		{api.IsolationVGPU, Units{Slices: 4, Core: 25, Slots: 1}},
		{api.IsolationPassthrough, Units{Slices: 16, Core: 100, Slots: 1}},
		{api.IsolationMPS, Units{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	// A placeholder of a vanished GPU has no instance: it is never chosen.
	p := n.AddPlaceholder("GPU-gone", 9, Units{Slices: 4, Core: 100, Slots: 4})
	if d := n.Devices[p]; !d.Instance.IsZero() || d.Healthy || !d.Placeholder {
		t.Errorf("placeholder = %+v", d)
	}
}

// TestFitWholeInstances checks the charge of a share on whole-instance
// GPUs and the reasons of a pod that cannot have one.
func TestFitWholeInstances(t *testing.T) {
	t4q4 := func(i int) api.GPU { return instGPU(i, api.IsolationVGPU, 16384, 4096) }
	tests := []struct {
		name string
		gpus []api.GPU
		req  *PodRequest
		// want is the pod's charge per device position, when it fits.
		want []Charge
		// wantCode, wantReason and wantMsg describe a refusal.
		wantCode   Code
		wantReason Reason
		wantMsg    string
	}{
		{
			name: "3 GiB on 4 GiB instances takes one instance",
			gpus: []api.GPU{t4q4(0)},
			req:  vmPod(api.IsolationVGPU, one("vm", 3, 0, 0)),
			want: []Charge{{Device: 0, Units: Units{Slices: 4, Core: 25, Slots: 1}}},
		},
		{
			name: "a share of the instance's core",
			gpus: []api.GPU{t4q4(0)},
			req:  vmPod(api.IsolationVGPU, one("vm", 4, 25, 0)),
			want: []Charge{{Device: 0, Units: Units{Slices: 4, Core: 25, Slots: 1}}},
		},
		{
			name:       "gpu-mem larger than the instance",
			gpus:       []api.GPU{t4q4(0), t4q4(1)},
			req:        vmPod(api.IsolationVGPU, one("vm", 5, 0, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonLargerThanInstance,
			wantMsg:    `gpu-mem request larger than every vGPU instance (container "vm": needs 5 slices, 0 core per GPU; the largest instance holds 4 slices, 25 core)`,
		},
		{
			name:       "gpu-core larger than the instance",
			gpus:       []api.GPU{t4q4(0)},
			req:        vmPod(api.IsolationVGPU, one("vm", 2, 50, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonLargerThanInstance,
		},
		{
			name: "the larger instance type serves it",
			gpus: []api.GPU{t4q4(0), instGPU(1, api.IsolationVGPU, 16384, 8192)},
			req:  vmPod(api.IsolationVGPU, one("vm", 5, 0, 0)),
			want: []Charge{{Device: 1, Units: Units{Slices: 8, Core: 50, Slots: 1}}},
		},
		{
			name: "passthrough takes the whole GPU",
			gpus: []api.GPU{instGPU(0, api.IsolationPassthrough, 16384, 16384)},
			req:  vmPod(api.IsolationPassthrough, one("vm", 3, 0, 0)),
			want: []Charge{{Device: 0, Units: Units{Slices: 16, Core: 100, Slots: 1}}},
		},
		{
			name:       "a container pod on a vgpu node",
			gpus:       []api.GPU{t4q4(0), instGPU(1, api.IsolationPassthrough, 16384, 16384)},
			req:        pod(one("app", 3, 0, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonSandboxGPUs,
			wantMsg:    `GPUs are for VM sandboxes (vgpu/passthrough); the pod's runtime class runs containers (container "app": 2 healthy GPU(s) of an allowed model are vgpu or passthrough)`,
		},
		{
			name:       "a vgpu pod on an mps node",
			gpus:       []api.GPU{instGPU(0, api.IsolationMPS, 16384, 0), instGPU(1, api.IsolationNone, 16384, 0)},
			req:        vmPod(api.IsolationVGPU, one("vm", 3, 0, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonNoSandboxGPU,
			wantMsg:    `no GPU of isolation mode vgpu, which the pod's runtime class needs (container "vm": 2 healthy GPU(s) of an allowed model are of other isolation modes)`,
		},
		{
			name:       "a vgpu pod on a passthrough node",
			gpus:       []api.GPU{instGPU(0, api.IsolationPassthrough, 16384, 16384)},
			req:        vmPod(api.IsolationVGPU, one("vm", 3, 0, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonNoSandboxGPU,
		},
		{
			name: "a container pod takes the shared GPU of a mixed node",
			gpus: []api.GPU{t4q4(0), instGPU(1, api.IsolationMPS, 16384, 0)},
			req:  pod(one("app", 3, 0, 0)),
			want: []Charge{{Device: 1, Units: Units{Slices: 3, Slots: 1}}},
		},
		{
			name:       "a 2-GPU container pod on a node with one shared GPU",
			gpus:       []api.GPU{t4q4(0), instGPU(1, api.IsolationMPS, 16384, 0)},
			req:        pod(one("app", 6, 0, 2)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonTooFewEligible,
			wantMsg:    "1 of an isolation mode the pod may not use",
		},
		{
			name: "sidecar and app each take an instance",
			gpus: []api.GPU{t4q4(0)},
			req:  vmPod(api.IsolationVGPU, sidecarReq("side", 1), one("app", 3, 0, 0)),
			want: []Charge{{Device: 0, Units: Units{Slices: 8, Core: 50, Slots: 2}}},
		},
		{
			name: "an init container runs in the app's instance's room",
			gpus: []api.GPU{t4q4(0)},
			req:  vmPod(api.IsolationVGPU, initReq("init", 2), one("app", 3, 0, 0)),
			want: []Charge{{Device: 0, Units: Units{Slices: 4, Core: 25, Slots: 1}}},
		},
		{
			name:       "an init container larger than the instance",
			gpus:       []api.GPU{t4q4(0)},
			req:        vmPod(api.IsolationVGPU, initReq("init", 6), one("app", 3, 0, 0)),
			wantCode:   UnschedulableAndUnresolvable,
			wantReason: ReasonLargerThanInstance,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := instNode(t, "n", nil, tc.gpus...)
			a, st := place(t, n, tc.req)
			if tc.wantReason != "" {
				if st.IsSuccess() {
					t.Fatalf("fits with %+v, want %q", a.Charges, tc.wantReason)
				}
				if st.Code != tc.wantCode || st.Reason != tc.wantReason {
					t.Errorf("status = %v %q, want %v %q", st.Code, st.Reason, tc.wantCode, tc.wantReason)
				}
				if !strings.Contains(st.Message(), tc.wantMsg) {
					t.Errorf("message %q does not contain %q", st.Message(), tc.wantMsg)
				}
				return
			}
			if st != nil {
				t.Fatal(st.Message())
			}
			if diff := cmp.Diff(tc.want, a.Charges); diff != "" {
				t.Errorf("charges (-want +got):\n%s", diff)
			}
			// The placement records the shares asked; rebuilding the
			// assignment from it charges the same whole instances.
			back, err := AssignmentFromPlacement(n, a.Placement(n, testTime), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, back.Charges); diff != "" {
				t.Errorf("charges from the placement (-want +got):\n%s", diff)
			}
			for _, c := range a.Containers {
				if want := tc.req.Container(c.Name, c.Init).PerGPU(); c.PerGPU != want {
					t.Errorf("container %s records %+v, want its share %+v", c.Name, c.PerGPU, want)
				}
			}
		})
	}
}

// TestFitInstancesRunOut fills GPUs of whole instances pod by pod: each pod
// takes an instance until none is left, and the next is refused with a
// reason preemption can help with. The node is never over-committed.
func TestFitInstancesRunOut(t *testing.T) {
	tests := []struct {
		name    string
		gpus    []api.GPU
		sandbox api.IsolationMode
		slices  int64
		fit     int
		reason  Reason
	}{
		{name: "two 3 GiB pods on two 8 GiB instances", gpus: []api.GPU{instGPU(0, api.IsolationVGPU, 16384, 8192)}, sandbox: api.IsolationVGPU, slices: 3, fit: 2, reason: ReasonInsufficientMemory},
		{name: "two 3 GiB pods on two 4 GiB instances", gpus: []api.GPU{instGPU(0, api.IsolationVGPU, 8192, 4096)}, sandbox: api.IsolationVGPU, slices: 3, fit: 2, reason: ReasonInsufficientMemory},
		{name: "one pod per passthrough GPU", gpus: []api.GPU{instGPU(0, api.IsolationPassthrough, 16384, 16384), instGPU(1, api.IsolationPassthrough, 16384, 16384)}, sandbox: api.IsolationPassthrough, slices: 1, fit: 2, reason: ReasonInsufficientMemory},
		{name: "a vgpu pod never spills onto passthrough", gpus: []api.GPU{instGPU(0, api.IsolationVGPU, 8192, 4096), instGPU(1, api.IsolationPassthrough, 16384, 16384)}, sandbox: api.IsolationVGPU, slices: 4, fit: 2, reason: ReasonInsufficientMemory},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := instNode(t, "n", nil, tc.gpus...)
			r := vmPod(tc.sandbox, one("vm", tc.slices, 0, 0))
			for i := 0; i < tc.fit; i++ {
				a, st := place(t, n, r)
				if st != nil {
					t.Fatalf("pod %d: %s", i, st.Message())
				}
				for _, c := range a.Charges {
					if got := n.Devices[c.Device].Isolation; got != tc.sandbox {
						t.Fatalf("pod %d placed on a %s GPU", i, got)
					}
				}
			}
			_, st := place(t, n, r)
			if st == nil {
				t.Fatalf("pod %d fits, want it refused", tc.fit)
			}
			if st.Code != Unschedulable || st.Reason != tc.reason {
				t.Errorf("status = %v %q, want Unschedulable %q", st.Code, st.Reason, tc.reason)
			}
			if want := "a whole instance for a share of"; tc.sandbox == api.IsolationVGPU && !strings.Contains(st.Message(), want) {
				t.Errorf("message %q does not say the charge is a whole instance", st.Message())
			}
		})
	}
}

// TestFitInstancesTopology: a container of a VM pod spanning two GPUs gets
// NVLink-joined GPUs, as on GPUs of other modes.
func TestFitInstancesTopology(t *testing.T) {
	gs := make([]api.GPU, 4)
	for i := range gs {
		gs[i] = instGPU(i, api.IsolationVGPU, 16384, 4096)
	}
	n := instNode(t, "n", map[[2]int]api.LinkType{{0, 1}: api.LinkNVLink, {2, 3}: api.LinkNVLink}, gs...)
	// One instance taken on GPUs 1 and 2: the pairs are 0-1 and 2-3.
	n.Used[1] = n.Devices[1].Instance
	n.Used[2] = n.Devices[2].Instance
	before := append([]Units(nil), n.Used...)
	a, st := place(t, n, vmPod(api.IsolationVGPU, one("vm", 6, 0, 2)))
	if st != nil {
		t.Fatal(st.Message())
	}
	got := a.Containers[0].Devices
	if n.LinkRank(got[0], got[1]) != api.LinkNVLink.Rank() || a.TopoRank != MaxTopoRank {
		t.Errorf("devices %v (rank %d), want an NVLink pair", got, a.TopoRank)
	}
	for _, d := range got {
		// 3 GiB on each GPU, charged one 4 GiB instance each.
		if want := before[d].Add(n.Devices[d].Instance); n.Used[d] != want {
			t.Errorf("gpu %d used %+v after the pod, want %+v", d, n.Used[d], want)
		}
	}
}

// TestFitInstancesNeverOvercommit places random container and VM pods on
// a node of mixed modes with every policy until nothing fits: no GPU is
// ever over-committed and every pod lands on GPUs its mode allows.
func TestFitInstancesNeverOvercommit(t *testing.T) {
	modes := []api.IsolationMode{"", api.IsolationVGPU, api.IsolationPassthrough}
	for _, name := range PolicyNames() {
		t.Run(name, func(t *testing.T) {
			p, err := NewPolicy(name)
			if err != nil {
				t.Fatal(err)
			}
			n := instNode(t, "n", map[[2]int]api.LinkType{{0, 1}: api.LinkNVLink, {2, 3}: api.LinkNVLink},
				instGPU(0, api.IsolationVGPU, 16384, 4096), instGPU(1, api.IsolationVGPU, 16384, 8192),
				instGPU(2, api.IsolationPassthrough, 16384, 16384), instGPU(3, api.IsolationMPS, 16384, 0))
			placed := 0
			for i := 0; i < 200; i++ {
				sandbox := modes[i%len(modes)]
				k := int64(1 + i%2)
				r := vmPod(sandbox, one("c", k*int64(1+i%5), 0, k))
				if o, ok := p.(Observer); ok {
					o.Observe(r)
				}
				a, st := Fit(n, r, p)
				if !st.IsSuccess() {
					continue
				}
				for _, c := range a.Containers {
					for _, d := range c.Devices {
						if !api.IsolationAllowed(sandbox, n.Devices[d].Isolation) {
							t.Fatalf("pod %d (sandbox %q) on a %s GPU", i, sandbox, n.Devices[d].Isolation)
						}
					}
				}
				n.Apply(a.Charges, 1)
				if err := n.Overcommitted(); err != nil {
					t.Fatalf("pod %d: %v", i, err)
				}
				placed++
			}
			if placed == 0 {
				t.Fatal("no pod placed")
			}
		})
	}
}
