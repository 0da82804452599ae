package allocator

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// openbShape is the node mix of the openb trace cluster (1,213 nodes, 6,212
// GPUs): count, GPUs per node, CPU milli.
var openbShape = []struct {
	count, gpus int
	cpu         int64
}{
	{549, 8, 96000}, {39, 8, 128000}, {387, 2, 104000}, {107, 2, 16000}, {22, 2, 64000}, {2, 2, 8000},
	{28, 4, 32000}, {17, 4, 96000}, {9, 4, 48000}, {21, 8, 96000}, {7, 8, 64000}, {1, 8, 82000},
	{19, 1, 8000}, {3, 1, 8000}, {1, 1, 128000},
}

// halfFullCluster is the openb cluster with about half of its GPU and CPU
// in use, in shares and whole GPUs.
func halfFullCluster(rng *rand.Rand) []*Node {
	var nodes []*Node
	for _, s := range openbShape {
		for i := 0; i < s.count; i++ {
			used := make([]int64, s.gpus)
			for g := range used {
				used[g] = []int64{0, 0, 0, 1000, 1000, 500, 300, 700, 900}[rng.IntN(9)]
			}
			n := milliNode(fmt.Sprintf("node-%d", len(nodes)), s.cpu, used...)
			n.CPUUsed = s.cpu / 2
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// traceMix feeds a trace-like request mix to the policy's histogram.
func traceMix(p Policy, rng *rand.Rand, n int) []*PodRequest {
	var reqs []*PodRequest
	for i := 0; i < n; i++ {
		var r *PodRequest
		switch x := rng.IntN(100); {
		case x < 13:
			r = &PodRequest{CPUMilli: int64(4000 * (1 + rng.IntN(8)))}
		case x < 50:
			r = share(int64(2000*(1+rng.IntN(6))), []int64{810, 470, 650, 320, 230, 460, 160, 550}[rng.IntN(8)])
		case x < 97:
			r = share(int64(4000*(1+rng.IntN(4))), 1000)
		default:
			r = multi(int64(16000*(1+rng.IntN(3))), []int64{2, 4, 8}[rng.IntN(3)])
		}
		if o, ok := p.(Observer); ok {
			o.Observe(r)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// BenchmarkFilterPrioritize1213 is the extender's work for one pod on the
// openb cluster, on one goroutine: Fit (filter and GPU choice) and
// NodeScore (prioritize) on all 1,213 nodes with a reusable Fitter, as the
// extender's filter does. The bound is 5 ms per pod for the
// fragmentation-aware policy.
func BenchmarkFilterPrioritize1213(b *testing.B) {
	for _, name := range []string{PolicyBinpack, PolicyFGD, PolicyGpuslice} {
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(42, 1))
			p, err := NewPolicy(name)
			if err != nil {
				b.Fatal(err)
			}
			nodes := halfFullCluster(rng)
			reqs := traceMix(p, rng, 2000)
			var f Fitter
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := reqs[i%len(reqs)]
				for _, n := range nodes {
					if a, st := f.Fit(n, r, p); st == nil {
						f.NodeScore(p, n, a)
					}
				}
			}
		})
	}
}
