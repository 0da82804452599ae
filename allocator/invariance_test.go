package allocator

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// invarianceCluster is a small mixed cluster: GPUs of 1000 and 2000 slices
// (times scale), two models, nodes of 1 to 8 GPUs, some GPUs part used.
func invarianceCluster(rng *rand.Rand, scale int64) []*Node {
	var nodes []*Node
	for i := 0; i < 24; i++ {
		ng := []int{1, 2, 4, 8}[rng.IntN(4)]
		base, model := int64(1000), "T4"
		if rng.IntN(3) == 0 {
			base, model = 2000, "A100"
		}
		n := NewNode(fmt.Sprintf("n%d", i), gpus(ng, model, base*scale, 64))
		for g := range n.Used {
			if u := []int64{0, 0, 0, 250, 500, 750}[rng.IntN(6)] * base / 1000; u > 0 {
				n.Used[g] = Units{Slices: u * scale, Slots: 1}
			}
		}
		n.CPUCapacity = int64(16000 * ng)
		n.CPUUsed = int64(rng.IntN(4)) * n.CPUCapacity / 8
		nodes = append(nodes, n)
	}
	return nodes
}

// invarianceStream is a trace-like request stream: CPU-only pods, shares of
// a 1000-slice GPU (times scale), whole GPUs and multi-GPU pods, some bound
// to a model.
func invarianceStream(rng *rand.Rand, scale int64, n int) []*PodRequest {
	out := make([]*PodRequest, n)
	for i := range out {
		cpu := int64(1000 * (1 + rng.IntN(12)))
		var r *PodRequest
		switch x := rng.IntN(20); {
		case x < 2:
			r = &PodRequest{CPUMilli: cpu}
		case x < 12:
			r = share(cpu, scale*[]int64{100, 250, 300, 460, 500, 810}[rng.IntN(6)])
		case x < 18:
			r = share(cpu, 1000*scale)
			r.Containers[0].Count = 1
		default:
			k := []int64{2, 4}[rng.IntN(2)]
			r = &PodRequest{CPUMilli: cpu, Containers: []ContainerRequest{{Name: "c", Slices: k * 1000 * scale, Count: k}}}
		}
		if rng.IntN(5) == 0 {
			r.Models = []string{"T4"}
		}
		out[i] = r
	}
	return out
}

// decisions places the stream on the cluster as the extender does (the
// policy observes each request, Fit and NodeScore on every node, the best
// score wins, the first node on ties) and returns each decision: the node,
// the GPUs and the node score, or "none".
func decisions(p Policy, nodes []*Node, reqs []*PodRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		if o, ok := p.(Observer); ok {
			o.Observe(r)
		}
		best, bestScore := -1, 0.0
		var bestA *Assignment
		for ni, n := range nodes {
			a, st := Fit(n, r, p)
			if st != nil {
				continue
			}
			if s := NodeScore(p, n, a); best < 0 || s > bestScore {
				best, bestScore, bestA = ni, s, a
			}
		}
		if best < 0 {
			out[i] = "none"
			continue
		}
		n := nodes[best]
		n.Apply(bestA.Charges, 1)
		n.CPUUsed += r.CPUMilli
		var devs [][]int
		for _, c := range bestA.Containers {
			devs = append(devs, c.Devices)
		}
		out[i] = fmt.Sprintf("%s %v %.9g", n.Name, devs, bestScore)
	}
	return out
}

// TestPoliciesUnitIndependent: every registered policy makes the same
// decisions (node, GPUs, and node score) when every GPU capacity, every
// usage and every request is scaled by the same factor, as when slices are
// GiB instead of milli-GPU: the policies and the learned fragmentation
// measure see fractions of a GPU, never a unit. A policy that compared
// slice counts with a constant would fail here.
func TestPoliciesUnitIndependent(t *testing.T) {
	for _, name := range PolicyNames() {
		for _, scale := range []int64{2, 3, 16, 80} {
			t.Run(fmt.Sprintf("%s/x%d", name, scale), func(t *testing.T) {
				var got [2][]string
				for j, k := range []int64{1, scale} {
					p, err := NewPolicy(name)
					if err != nil {
						t.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(11, 17))
					nodes := invarianceCluster(rng, k)
					got[j] = decisions(p, nodes, invarianceStream(rng, k, 600))
					for _, n := range nodes {
						if err := n.Overcommitted(); err != nil {
							t.Fatal(err)
						}
					}
				}
				placed := 0
				for _, d := range got[0] {
					if d != "none" {
						placed++
					}
				}
				if placed < 50 {
					t.Fatalf("only %d of %d pods placed: the test says little", placed, len(got[0]))
				}
				if diff := cmp.Diff(got[0], got[1]); diff != "" {
					t.Errorf("decisions at 1 and %d (-x1 +x%d):\n%s", scale, scale, diff)
				}
			})
		}
	}
}

// TestPoliciesDeterministic: two instances of each registered policy fed
// the same requests on the same cluster make the same decisions, scores
// included (a policy that ranged over a map or read the clock would not).
func TestPoliciesDeterministic(t *testing.T) {
	for _, name := range PolicyNames() {
		t.Run(name, func(t *testing.T) {
			var got [2][]string
			for j := range got {
				p, err := NewPolicy(name)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(7, 7))
				got[j] = decisions(p, invarianceCluster(rng, 1), invarianceStream(rng, 1, 300))
			}
			if diff := cmp.Diff(got[0], got[1]); diff != "" {
				t.Errorf("two identical runs differ (-first +second):\n%s", diff)
			}
		})
	}
}

// Every registered policy's fits are reusable: Binpack and Spread with no
// revision, the fragmentation-aware ones with their published
// distribution, which a new distribution changes.
func TestRevision(t *testing.T) {
	for _, name := range PolicyNames() {
		p, err := NewPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		rev, ok := Revision(p)
		if !ok {
			t.Errorf("Revision(%s): not reusable", name)
		}
		o, learns := p.(Observer)
		if !learns {
			if rev != (Rev{}) {
				t.Errorf("Revision(%s) = %v, want the zero Rev", name, rev)
			}
			continue
		}
		if rev.Of != p || rev.Seq != 1 {
			t.Errorf("Revision(%s) = %+v, want the instance's first", name, rev)
		}
		// A new class always publishes a new distribution, the next.
		o.Observe(&PodRequest{Containers: []ContainerRequest{{Name: "c", Slices: 3}}})
		if again, _ := Revision(p); again.Of != p || again.Seq != rev.Seq+1 {
			t.Errorf("Revision(%s) = %+v after a new class was observed, want Seq %d", name, again, rev.Seq+1)
		}
	}
	// A policy this package does not know (the simulator's random one)
	// is not reusable.
	if _, ok := Revision(unknownPolicy{}); ok {
		t.Error("Revision(unknownPolicy{}): reusable, want not")
	}
}

// unknownPolicy is a policy Revision does not know.
type unknownPolicy struct{ Binpack }
