package sim

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// TestPaperFGDClasses: the paper's typical classes are the most frequent
// classes of the whole pod list until they cover 95% of its pods, CPU-only
// pods included, renormalised; they do not move with what arrives.
func TestPaperFGDClasses(t *testing.T) {
	nodes := []trace.Node{{Name: "a", CPUMilli: 64000, GPUs: 2, Model: "T4"}}
	var pods []trace.Pod
	add := func(n int, p trace.Pod) {
		for i := 0; i < n; i++ {
			pods = append(pods, p)
		}
	}
	add(60, trace.Pod{Name: "s", CPUMilli: 4000, NumGPU: 1, GPUMilli: 500})
	add(36, trace.Pod{Name: "c", CPUMilli: 8000})
	add(4, trace.Pod{Name: "m", CPUMilli: 16000, NumGPU: 2, GPUMilli: 1000})
	s := newState(nodes, nil, 1)
	f := paperFGD(s, pods).(*allocator.FGD)
	want := []allocator.WeightedClass{
		{Class: allocator.TaskClass{CPUMilli: 4000, PerGPU: allocator.Units{Slices: 500, Slots: 1}, Count: 1}, Weight: 60.0 / 96},
		{Class: allocator.TaskClass{CPUMilli: 8000}, Weight: 36.0 / 96},
	}
	if diff := cmp.Diff(want, f.Classes()); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	rev := f.Revision()
	for i := 0; i < 200; i++ {
		f.Observe(&allocator.PodRequest{CPUMilli: 16000, Containers: []allocator.ContainerRequest{{Name: "c", Slices: 2000, Count: 2}}})
	}
	if diff := cmp.Diff(want, f.Classes()); diff != "" || f.Revision() != rev {
		t.Errorf("an observation moved the paper's classes (-want +got):\n%s", diff)
	}
}

// TestPaperFGDTieRank: among nodes of equal score the paper's policy takes
// the one of lowest rank in a per-seed random order, every time (the
// first name in its patched kube-scheduler), not a fresh draw per pod.
func TestPaperFGDTieRank(t *testing.T) {
	var nodes []trace.Node
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		nodes = append(nodes, trace.Node{Name: n, CPUMilli: 64000, GPUs: 1, Model: "T4"})
	}
	cpu := trace.Pod{Name: "cpu", CPUMilli: 1000}
	for seed := uint64(1); seed <= 4; seed++ {
		cfg := Config{Nodes: nodes, Pods: []trace.Pod{cpu}, Seed: seed, Policy: PolicyFGDPaper}
		s, err := cfg.newState(milli)
		if err != nil {
			t.Fatal(err)
		}
		first := -1
		for i, r := range s.tieRank {
			if r == 0 {
				first = i
			}
		}
		// A CPU-only pod changes no node's fragmentation under these
		// classes (no GPU class loses its CPU): every node ties.
		for k := 0; k < 8; k++ {
			pl, ok := s.placeOn(cpu, false)
			if !ok {
				t.Fatal("CPU-only pod not placed")
			}
			if pl.node != first {
				t.Fatalf("seed %d pod %d went to node %d, want the first-ranked node %d", seed, k, pl.node, first)
			}
		}
	}
}

// TestPaperFGDDeterministic: the same seed gives the same run.
func TestPaperFGDDeterministic(t *testing.T) {
	nodes, pods := testdata(t)
	run := func() *Run {
		r, err := Simulate(context.Background(), Config{Nodes: nodes, Pods: pods, Seed: 7, Policy: PolicyFGDPaper, Target: 1.3})
		if err != nil {
			t.Fatal(err)
		}
		r.PlaceTime = 0
		return r
	}
	if diff := cmp.Diff(run(), run()); diff != "" {
		t.Errorf("two runs of one seed differ (-first +second):\n%s", diff)
	}
}
