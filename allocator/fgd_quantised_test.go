package allocator

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestQuantise checks the paper's integer score: int(100*sigmoid(x)).
func TestQuantise(t *testing.T) {
	for _, tc := range []struct{ x, want float64 }{
		{0, 50}, {0.05, 51}, {0.03, 50}, {-0.35, 41}, {0.3, 57}, {-0.7, 33}, {10, 99}, {-10, 0}, {100, 100},
	} {
		if got := quantise(tc.x); got != tc.want {
			t.Errorf("quantise(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

// TestFGDQuantised: with Quantised, a node scores the integer of the
// continuous decrease of its chosen assignment, and a share goes to the
// lowest-index GPU among those of the best integer score (where the
// continuous policy may prefer another).
func TestFGDQuantised(t *testing.T) {
	cont := NewFGD(PolicyFGD, twoClasses())
	qcfg := twoClasses()
	qcfg.Quantised = true
	q := NewFGD(PolicyFGD, qcfg)
	rng := rand.New(rand.NewPCG(3, 4))
	differ := 0
	for it := 0; it < 500; it++ {
		used := make([]int64, 1+rng.IntN(4))
		for i := range used {
			used[i] = []int64{0, 100, 200, 300, 450, 460, 500, 700}[rng.IntN(8)]
		}
		n := milliNode("n", 2000+rng.Int64N(8000), used...)
		req := share(1000, 100+100*rng.Int64N(4))
		a, st := Fit(n, req, q)
		if st != nil {
			continue
		}
		// The integer device scores, by hand from the continuous policy:
		// the device score is minus the fragmentation after, so the
		// decrease is the node's fragmentation before plus it.
		v0 := n.View()
		before := -cont.ScoreDevice(&v0, 0, Units{}) // no charge, no CPU
		v := n.View()
		v.podCPU = req.CPUMilli
		best, bestScore := -1, -1.0
		for i := range n.Devices {
			d := n.Devices[i].Charge(Units{Slices: req.Containers[0].Slices, Slots: 1})
			if !d.Fits(n.Free(i)) {
				continue
			}
			s := quantise(before + cont.ScoreDevice(&v, i, d))
			if s > bestScore {
				best, bestScore = i, s
			}
		}
		if diff := cmp.Diff([]int{best}, a.Containers[0].Devices); diff != "" {
			t.Fatalf("node %v, request %d: devices (-want +got):\n%s", used, req.Containers[0].Slices, diff)
		}
		ca, _ := Fit(n, req, cont)
		if !cmp.Equal(ca.Containers[0].Devices, a.Containers[0].Devices) {
			differ++
		}
		got := NodeScore(q, n, a) - float64(MaxTopoRank)*topoWeight
		want := quantise(NodeScore(cont, n, a) - float64(MaxTopoRank)*topoWeight)
		if math.Abs(got-want) > 1e-9 || got != math.Trunc(got) {
			t.Fatalf("node %v: score %v, want the integer %v", used, got, want)
		}
	}
	if differ == 0 {
		t.Error("the integer scores never chose another GPU than the continuous ones: the test does not exercise ties")
	}
}

// TestFGDFixed: a Fixed policy scores with its seed and learns nothing.
func TestFGDFixed(t *testing.T) {
	cfg := twoClasses()
	cfg.Fixed = true
	f := NewFGD(PolicyFGD, cfg)
	want, rev := f.Classes(), f.Revision()
	for i := 0; i < 1000; i++ {
		f.Observe(multi(8000, 4))
	}
	if diff := cmp.Diff(want, f.Classes()); diff != "" || f.Revision() != rev {
		t.Errorf("a fixed distribution moved (-want +got):\n%s", diff)
	}
}

// TestFGDOrderTieBreak: among nodes of equal fragmentation, OrderTieBreak
// prefers the same node (the lowest nodeRank) for every pod; without it
// they tie.
func TestFGDOrderTieBreak(t *testing.T) {
	cfg := twoClasses()
	cfg.Quantised, cfg.OrderTieBreak = true, true
	f := NewFGD(PolicyFGD, cfg)
	plain := NewFGD(PolicyFGD, twoClasses())
	var nodes []*Node
	want, wantRank := "", 2.0
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		nodes = append(nodes, milliNode(name, 64000, 0, 300))
		if r := nodeRank(name); r < wantRank {
			want, wantRank = name, r
		}
	}
	// Last in the fixed order first, so that a first-found rule fails.
	sort.Slice(nodes, func(i, j int) bool { return nodeRank(nodes[i].Name) > nodeRank(nodes[j].Name) })
	for _, req := range []*PodRequest{share(1000, 300), share(2000, 500), multi(4000, 1), {CPUMilli: 1000}} {
		best, bestScore := "", math.Inf(-1)
		var plainScores []float64
		for _, n := range nodes {
			a, st := Fit(n, req, f)
			if st != nil {
				t.Fatal(st.Message())
			}
			if s := NodeScore(f, n, a); s > bestScore {
				best, bestScore = n.Name, s
			}
			pa, _ := Fit(n, req, plain)
			plainScores = append(plainScores, NodeScore(plain, n, pa))
		}
		if best != want {
			t.Errorf("request %+v went to %s, want %s (the first in the fixed order)", req, best, want)
		}
		for _, s := range plainScores[1:] {
			if s != plainScores[0] {
				t.Fatalf("the nodes do not tie without the tie-break: %v", plainScores)
			}
		}
	}
}
