package allocator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// placed charges a one-container pod's per-GPU share on devices devs of n
// and returns it as the advisor sees it.
func placed(n *Node, name string, r *PodRequest, devs ...int) DefragPod {
	cs := chargesOf(n, []ContainerAssignment{{Name: r.Containers[0].Name, Devices: devs, PerGPU: r.Containers[0].PerGPU()}})
	n.Apply(cs, 1)
	return DefragPod{Name: name, Node: n.Name, Request: r, Charges: cs}
}

func slicePod(slices, core int64) *PodRequest { return pod(one("main", slices, core, 1)) }

func TestDefrag(t *testing.T) {
	type cluster struct {
		nodes []*Node
		pods  []DefragPod
	}
	for _, tc := range []struct {
		name  string
		setup func() cluster
		opts  DefragOptions
		want  DefragPlan
	}{
		{
			name: "two half-full GPUs consolidate into one",
			setup: func() cluster {
				a := NewNode("a", gpus(2, "A100", 40, 4))
				return cluster{[]*Node{a}, []DefragPod{placed(a, "p1", slicePod(20, 0), 0), placed(a, "p2", slicePod(20, 0), 1)}}
			},
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "p1", FromNode: "a", FromGPUs: []int{0}, ToNode: "a", ToGPUs: []int{1}, Slices: 20}},
				Freed:     []GPURef{{Node: "a", GPU: 0}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 20, FreeWholeGPUsBefore: 0, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 1, FragmentationAfter: 0},
		},
		{
			name: "pods move across nodes, smallest GPU first, the fullest destination wins",
			setup: func() cluster {
				a := NewNode("a", gpus(1, "T4", 16, 4))
				b := NewNode("b", gpus(2, "T4", 16, 4))
				return cluster{[]*Node{a, b}, []DefragPod{
					placed(a, "small", slicePod(2, 0), 0),
					placed(b, "big", slicePod(12, 0), 0),
					placed(b, "mid", slicePod(6, 0), 1),
				}}
			},
			// small (2) goes beside big (12 of 16: the least fragmentation
			// left), freeing a's GPU; mid (6) then fits nowhere.
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "small", FromNode: "a", FromGPUs: []int{0}, ToNode: "b", ToGPUs: []int{0}, Slices: 2}},
				Freed:     []GPURef{{Node: "a", GPU: 0}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 2, FreeWholeGPUsBefore: 0, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 14.0/16 + 4.0/16 + 10.0/16, FragmentationAfter: 2.0/16 + 10.0/16},
		},
		{
			name: "nothing can be freed",
			setup: func() cluster {
				a := NewNode("a", gpus(2, "A100", 40, 4))
				return cluster{[]*Node{a}, []DefragPod{placed(a, "p1", slicePod(30, 0), 0), placed(a, "p2", slicePod(30, 0), 1)}}
			},
			want: DefragPlan{Policy: PolicyBinpack, Moves: []DefragMove{}, Freed: []GPURef{},
				FragmentationBefore: 0.5, FragmentationAfter: 0.5},
		},
		{
			name: "a move that would over-commit the core is not proposed",
			setup: func() cluster {
				// The slices fit (20+20 of 40), the core does not (60+50).
				a := NewNode("a", gpus(2, "A100", 40, 4))
				return cluster{[]*Node{a}, []DefragPod{placed(a, "p1", slicePod(20, 60), 0), placed(a, "p2", slicePod(20, 50), 1)}}
			},
			want: DefragPlan{Policy: PolicyBinpack, Moves: []DefragMove{}, Freed: []GPURef{},
				FragmentationBefore: 1, FragmentationAfter: 1},
		},
		{
			name: "a move that would over-commit the node's CPU is not proposed",
			setup: func() cluster {
				a := NewNode("a", gpus(1, "T4", 16, 4))
				b := NewNode("b", gpus(1, "T4", 16, 4))
				a.CPUCapacity, b.CPUCapacity = 8000, 8000
				p := slicePod(4, 0)
				p.CPUMilli = 6000
				q := slicePod(4, 0)
				q.CPUMilli = 6000
				a.CPUUsed, b.CPUUsed = 6000, 6000
				return cluster{[]*Node{a, b}, []DefragPod{placed(a, "p", p, 0), placed(b, "q", q, 0)}}
			},
			want: DefragPlan{Policy: PolicyBinpack, Moves: []DefragMove{}, Freed: []GPURef{},
				FragmentationBefore: 1.5, FragmentationAfter: 1.5},
		},
		{
			name: "a pinned pod keeps its GPU; the other GPU is freed instead",
			setup: func() cluster {
				a := NewNode("a", gpus(2, "A100", 40, 4))
				p1 := placed(a, "p1", slicePod(10, 0), 0)
				p1.Pinned = true
				return cluster{[]*Node{a}, []DefragPod{p1, placed(a, "p2", slicePod(20, 0), 1)}}
			},
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "p2", FromNode: "a", FromGPUs: []int{1}, ToNode: "a", ToGPUs: []int{0}, Slices: 20}},
				Freed:     []GPURef{{Node: "a", GPU: 1}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 20, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 0.75 + 0.5, FragmentationAfter: 0.25},
		},
		{
			name: "the move bound stops the plan",
			setup: func() cluster {
				a := NewNode("a", gpus(4, "A100", 40, 4))
				return cluster{[]*Node{a}, []DefragPod{
					placed(a, "p0", slicePod(10, 0), 0), placed(a, "p1", slicePod(10, 0), 1),
					placed(a, "p2", slicePod(10, 0), 2), placed(a, "p3", slicePod(10, 0), 3),
				}}
			},
			opts: DefragOptions{MaxMoves: 2},
			want: DefragPlan{Policy: PolicyBinpack,
				Moves: []DefragMove{
					{Step: 1, Pod: "p0", FromNode: "a", FromGPUs: []int{0}, ToNode: "a", ToGPUs: []int{1}, Slices: 10},
					{Step: 2, Pod: "p2", FromNode: "a", FromGPUs: []int{2}, ToNode: "a", ToGPUs: []int{1}, Slices: 10},
				},
				Freed:     []GPURef{{Node: "a", GPU: 0}, {Node: "a", GPU: 2}},
				FreedGPUs: 2, MovedPods: 2, MovedSlices: 20, FreeWholeGPUsAfter: 2,
				FragmentationBefore: 3, FragmentationAfter: 0.25 + 0.75},
		},
		{
			name: "a node the pod may not go to is no destination",
			setup: func() cluster {
				a := NewNode("a", gpus(1, "T4", 16, 4))
				b := NewNode("b", gpus(1, "T4", 16, 4))
				return cluster{[]*Node{a, b}, []DefragPod{placed(a, "p", slicePod(4, 0), 0), placed(b, "q", slicePod(4, 0), 0)}}
			},
			opts: DefragOptions{Allowed: func(_ *DefragPod, n *Node) bool { return n.Name != "b" }},
			// q may go to a; p may not go to b.
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "q", FromNode: "b", FromGPUs: []int{0}, ToNode: "a", ToGPUs: []int{0}, Slices: 4}},
				Freed:     []GPURef{{Node: "b", GPU: 0}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 4, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 1.5, FragmentationAfter: 0.5},
		},
		{
			name: "whole-GPU pods never land on free GPUs, and usage no pod accounts for is not freed",
			setup: func() cluster {
				a := NewNode("a", gpus(4, "A100", 40, 4))
				ps := []DefragPod{placed(a, "train", pod(one("main", 80, 200, 2)), 0, 1)}
				a.Used[2] = Units{Slices: 5} // held by a pod the advisor was not told of
				return cluster{[]*Node{a}, append(ps, placed(a, "p", slicePod(5, 0), 3))}
			},
			// train needs two free GPUs: it stays. p goes beside the unknown
			// holder, whose GPU is never a candidate.
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "p", FromNode: "a", FromGPUs: []int{3}, ToNode: "a", ToGPUs: []int{2}, Slices: 5}},
				Freed:     []GPURef{{Node: "a", GPU: 3}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 5, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 2 * 35.0 / 40, FragmentationAfter: 30.0 / 40},
		},
		{
			name: "a model-restricted pod stays on its model",
			setup: func() cluster {
				a := NewNode("a", gpus(1, "A100", 40, 4))
				b := NewNode("b", gpus(1, "T4", 40, 4))
				p := slicePod(10, 0)
				p.Models = []string{"A100"}
				return cluster{[]*Node{a, b}, []DefragPod{placed(a, "p", p, 0), placed(b, "q", slicePod(10, 0), 0)}}
			},
			want: DefragPlan{Policy: PolicyBinpack,
				Moves:     []DefragMove{{Step: 1, Pod: "q", FromNode: "b", FromGPUs: []int{0}, ToNode: "a", ToGPUs: []int{0}, Slices: 10}},
				Freed:     []GPURef{{Node: "b", GPU: 0}},
				FreedGPUs: 1, MovedPods: 1, MovedSlices: 10, FreeWholeGPUsAfter: 1,
				FragmentationBefore: 1.5, FragmentationAfter: 0.5},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.setup()
			before := make([][]Units, len(c.nodes))
			for i, n := range c.nodes {
				before[i] = append([]Units(nil), n.Used...)
			}
			got, err := Defrag(c.nodes, c.pods, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			for i, n := range c.nodes {
				if diff := cmp.Diff(before[i], n.Used); diff != "" {
					t.Errorf("Defrag changed node %s (-before +after):\n%s", n.Name, diff)
				}
			}
		})
	}
}

func TestDefragErrors(t *testing.T) {
	a := NewNode("a", gpus(1, "T4", 16, 4))
	p := placed(a, "p", slicePod(4, 0), 0)
	for _, tc := range []struct {
		name  string
		nodes []*Node
		pods  []DefragPod
		want  string
	}{
		{"unknown node", []*Node{a}, []DefragPod{{Name: "x", Node: "nope", Request: slicePod(1, 0)}}, "pod x is on node nope, which is not listed"},
		{"bad device", []*Node{a}, []DefragPod{{Name: "x", Node: "a", Request: slicePod(1, 0), Charges: []Charge{{Device: 3, Units: Units{Slices: 1}}}}}, "device position 3"},
		{"charges beyond usage", []*Node{a}, []DefragPod{p, p}, "exceed its usage"},
		{"node twice", []*Node{a, a}, nil, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Defrag(tc.nodes, tc.pods, DefragOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestDefragProperties checks random clusters fragmented by Spread: the
// plan, replayed move by move on a copy, never over-commits a GPU or a
// node's CPU, each move starts where the pod is, no pod moves twice, the
// bound holds, FreedGPUs is the recount of wholly free GPUs, every GPU in
// Freed is wholly free at the end, and the plan is deterministic.
func TestDefragProperties(t *testing.T) {
	freed, moved := 0, 0
	for seed := uint64(1); seed <= 150; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var nodes []*Node
		var pods []DefragPod
		for i := range 1 + rng.IntN(5) {
			n := NewNode(fmt.Sprintf("n%d", i), gpus(1+rng.IntN(4), []string{"A", "B"}[rng.IntN(2)], 8, 4))
			if rng.IntN(2) == 0 {
				n.CPUCapacity = 16000
			}
			nodes = append(nodes, n)
		}
		for k := range 4 + rng.IntN(20) {
			count := int64(1)
			if rng.IntN(6) == 0 {
				count = 2
			}
			r := pod(one("main", 1+rng.Int64N(8), rng.Int64N(60), count))
			r.CPUMilli = 1000 * rng.Int64N(6)
			if rng.IntN(5) == 0 {
				r.Models = []string{"A"}
			}
			n := nodes[rng.IntN(len(nodes))]
			a, st := Fit(n, r, Spread{})
			if !st.IsSuccess() {
				continue
			}
			n.Apply(a.Charges, 1)
			if n.CPUCapacity > 0 {
				n.CPUUsed += r.CPUMilli
			}
			pods = append(pods, DefragPod{Name: fmt.Sprintf("p%d", k), Node: n.Name, Request: r, Charges: a.Charges, Pinned: rng.IntN(10) == 0})
		}
		for _, name := range PolicyNames() {
			pol, err := NewPolicy(name)
			if err != nil {
				t.Fatal(err)
			}
			o := DefragOptions{Policy: pol, MaxMoves: rng.IntN(4)}
			plan, err := Defrag(nodes, pods, o)
			if err != nil {
				t.Fatalf("seed %d %s: %v", seed, name, err)
			}
			again, err := Defrag(nodes, pods, o)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(plan, again); diff != "" {
				t.Fatalf("seed %d %s: not deterministic (-first +second):\n%s", seed, name, diff)
			}
			checkPlan(t, fmt.Sprintf("seed %d %s", seed, name), nodes, pods, plan, o.MaxMoves)
			freed += plan.FreedGPUs
			moved += plan.MovedPods
		}
	}
	// Not a vacuous check: the random clusters do get plans.
	if freed < 50 || moved == 0 {
		t.Errorf("the random plans freed %d GPUs by moving %d pods; want at least 50 freed", freed, moved)
	}
	t.Logf("random plans freed %d GPUs by moving %d pods", freed, moved)
}

// checkPlan replays plan on copies of nodes, independently of the advisor.
func checkPlan(t *testing.T, what string, nodes []*Node, pods []DefragPod, plan *DefragPlan, maxMoves int) {
	t.Helper()
	state := map[string]*Node{}
	free := func() int {
		k := 0
		for _, n := range state {
			for i := range n.Devices {
				if n.Devices[i].Healthy && n.Used[i].IsZero() {
					k++
				}
			}
		}
		return k
	}
	for _, n := range nodes {
		state[n.Name] = n.Clone()
	}
	freeBefore := free()
	where := map[string]*DefragPod{}
	for i := range pods {
		p := pods[i]
		where[p.Name] = &p
	}
	moved := map[string]bool{}
	for _, m := range plan.Moves {
		p := where[m.Pod]
		if p.Pinned || moved[m.Pod] {
			t.Fatalf("%s: pod %s moved while pinned or twice", what, m.Pod)
		}
		moved[m.Pod] = true
		from, to := state[p.Node], state[m.ToNode]
		if m.FromNode != p.Node || !cmp.Equal(m.FromGPUs, gpuIndices(from, p.Charges)) {
			t.Fatalf("%s: move %+v does not start where the pod is (%s %v)", what, m, p.Node, gpuIndices(from, p.Charges))
		}
		from.Apply(p.Charges, -1)
		var cs []Charge
		for _, g := range m.ToGPUs {
			cs = append(cs, Charge{Device: g, Units: to.Devices[g].Charge(p.Request.Containers[0].PerGPU())})
		}
		to.Apply(cs, 1)
		if from.CPUCapacity > 0 {
			from.CPUUsed -= p.Request.CPUMilli
		}
		if to.CPUCapacity > 0 {
			to.CPUUsed += p.Request.CPUMilli
		}
		if err := to.Overcommitted(); err != nil {
			t.Fatalf("%s: move %+v over-commits: %v", what, m, err)
		}
		if to.CPUCapacity > 0 && to.CPUUsed > to.CPUCapacity {
			t.Fatalf("%s: move %+v over-commits node CPU", what, m)
		}
		p.Node, p.Charges = m.ToNode, cs
	}
	if maxMoves > 0 && len(plan.Moves) > maxMoves {
		t.Errorf("%s: %d moves, bound %d", what, len(plan.Moves), maxMoves)
	}
	after := free()
	if plan.FreeWholeGPUsBefore != freeBefore || plan.FreeWholeGPUsAfter != after || plan.FreedGPUs != after-freeBefore || len(plan.Freed) != plan.FreedGPUs || plan.MovedPods != len(plan.Moves) {
		t.Errorf("%s: plan counts %d -> %d (freed %d, %d listed, %d pods), recount %d -> %d", what, plan.FreeWholeGPUsBefore, plan.FreeWholeGPUsAfter,
			plan.FreedGPUs, len(plan.Freed), plan.MovedPods, freeBefore, after)
	}
	for _, g := range plan.Freed {
		n := state[g.Node]
		if !n.Used[g.GPU].IsZero() {
			t.Errorf("%s: freed GPU %+v holds %+v", what, g, n.Used[g.GPU])
		}
	}
}
