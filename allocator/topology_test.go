package allocator

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

// topoNode builds an n-GPU node (16 slices each) from an inventory whose
// links are given per pair; pairs not listed are cross-socket.
func topoNode(name string, n int, links map[[2]int]api.LinkType) *Node {
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: 1024}
	for i := 0; i < n; i++ {
		g := api.GPU{Index: i, UUID: fmt.Sprintf("%s-%d", name, i), Model: "A100", Slices: 16, Slots: 8, CoreUnits: 100, Healthy: true, Isolation: api.IsolationMPS}
		for j := 0; j < n; j++ {
			if i == j {
				continue
			}
			t, ok := links[[2]int{min(i, j), max(i, j)}]
			if !ok {
				t = api.LinkCrossSocket
			}
			g.Links = append(g.Links, api.Link{Peer: j, Type: t})
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	return NodeFromInventory(name, inv)
}

// dgx is 8 GPUs in two NVLink quads (full NVLink inside a quad), quads
// joined across the sockets.
func dgx(name string) *Node {
	l := map[[2]int]api.LinkType{}
	for _, q := range [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}} {
		for x := 0; x < len(q); x++ {
			for y := x + 1; y < len(q); y++ {
				l[[2]int{q[x], q[y]}] = api.LinkNVLink
			}
		}
	}
	return topoNode(name, 8, l)
}

// pcieBox is 4 GPUs: 0-1 and 2-3 behind one PCIe switch each, the pairs on
// the same NUMA node only through the host.
func pcieBox(name string) *Node {
	return topoNode(name, 4, map[[2]int]api.LinkType{
		{0, 1}: api.LinkPCIeSwitch, {2, 3}: api.LinkPCIeSwitch,
		{0, 2}: api.LinkSameNUMA, {0, 3}: api.LinkSameNUMA, {1, 2}: api.LinkSameNUMA, {1, 3}: api.LinkSameNUMA,
	})
}

// pairBox is 4 GPUs: NVLink pairs 0-1 and 2-3, the pairs across sockets.
func pairBox(name string) *Node {
	return topoNode(name, 4, map[[2]int]api.LinkType{{0, 1}: api.LinkNVLink, {2, 3}: api.LinkNVLink})
}

func whole(k int64) *PodRequest {
	return &PodRequest{Containers: []ContainerRequest{{Name: "c", Slices: 16 * k, Count: k}}}
}

func TestTopologyChoice(t *testing.T) {
	fgd := func() Policy { return NewFGD(PolicyGpuslice, FGDConfig{PackTieBreak: true}) }
	tests := []struct {
		name string
		node func() *Node
		used []int // wholly used GPUs
		req  *PodRequest
		want []int
		rank int
	}{
		{name: "nvlink pair over cross-socket", node: func() *Node { return pairBox("n") }, used: []int{0}, req: whole(2), want: []int{2, 3}, rank: api.LinkNVLink.Rank()},
		{name: "pcie switch over numa", node: func() *Node { return pcieBox("n") }, used: []int{1}, req: whole(2), want: []int{2, 3}, rank: api.LinkPCIeSwitch.Rank()},
		{name: "numa when no switch pair is free", node: func() *Node { return pcieBox("n") }, used: []int{1, 3}, req: whole(2), want: []int{0, 2}, rank: api.LinkSameNUMA.Rank()},
		{name: "cross-socket as last resort", node: func() *Node { return pairBox("n") }, used: []int{1, 3}, req: whole(2), want: []int{0, 2}, rank: api.LinkCrossSocket.Rank()},
		{name: "pair keeps the free quad intact", node: func() *Node { return dgx("n") }, used: []int{0, 1}, req: whole(2), want: []int{2, 3}, rank: api.LinkNVLink.Rank()},
		{name: "one GPU keeps the free quad intact", node: func() *Node { return dgx("n") }, used: []int{4, 5, 6}, req: whole(1), want: []int{7}, rank: MaxTopoRank},
		{name: "one GPU from a broken quad", node: func() *Node { return dgx("n") }, used: []int{0}, req: whole(1), want: []int{1}, rank: MaxTopoRank},
		{name: "quad inside one island", node: func() *Node { return dgx("n") }, used: []int{}, req: whole(4), want: []int{0, 1, 2, 3}, rank: api.LinkNVLink.Rank()},
		{name: "three GPUs from the broken quad", node: func() *Node { return dgx("n") }, used: []int{5}, req: whole(3), want: []int{4, 6, 7}, rank: api.LinkNVLink.Rank()},
	}
	for _, tc := range tests {
		for _, p := range []Policy{Binpack{}, Spread{}, fgd()} {
			t.Run(tc.name+"/"+p.Name(), func(t *testing.T) {
				n := tc.node()
				for _, u := range tc.used {
					n.Used[u] = n.Devices[u].Capacity
				}
				a, st := Fit(n, tc.req, p)
				if st != nil {
					t.Fatalf("Fit: %v", st.Message())
				}
				if diff := cmp.Diff(tc.want, a.Containers[0].Devices); diff != "" {
					t.Errorf("devices (-want +got):\n%s", diff)
				}
				if a.TopoRank != tc.rank {
					t.Errorf("TopoRank = %d, want %d", a.TopoRank, tc.rank)
				}
			})
		}
	}
}

// TestTopologyNodeScore checks that nodes are ranked by the best set they
// can offer, whatever the policy's own preference.
func TestTopologyNodeScore(t *testing.T) {
	nv := pairBox("nvlink")
	nv.Used[0] = Units{Slices: 4, Core: 10, Slots: 1} // a busier node that binpack would prefer
	pc := pcieBox("pcie")
	pc.Used[1] = pc.Devices[1].Capacity
	pc.Used[3] = pc.Devices[3].Capacity // only a NUMA pair left
	for _, p := range []Policy{Binpack{}, Spread{}, NewFGD(PolicyFGD, FGDConfig{})} {
		t.Run(p.Name(), func(t *testing.T) {
			an, st := Fit(nv, whole(2), p)
			if st != nil {
				t.Fatal(st.Message())
			}
			ap, st := Fit(pc, whole(2), p)
			if st != nil {
				t.Fatal(st.Message())
			}
			if sn, sp := NodeScore(p, nv, an), NodeScore(p, pc, ap); sn <= sp {
				t.Errorf("NVLink node score %v <= NUMA-only node score %v", sn, sp)
			}
		})
	}
}
