package sim

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

var defragLine = regexp.MustCompile(`^DEFRAG policy=(\S+) trace=pods\.csv units=(milli|gib) seed=(\d+) arrived=\d+\.\d\d alloc=\d+\.\d\d gpus=\d+ pods=\d+ freed_gpus=\d+ moved_pods=\d+ moved_slices=\d+ free_gpus_before=\d+ free_gpus_after=\d+ frag_before=\d+\.\d\d frag_after=\d+\.\d\d$`)

// TestDefragReplaysSimulate: in both unit modes the advisor's state is the
// run's state at 100% arrived (the same allocation as Simulate's
// Alloc100), its plan's counts add up, and its line has the documented
// form.
func TestDefragReplaysSimulate(t *testing.T) {
	nodes, pods := testdata(t)
	for _, u := range []Units{UnitsMilli, UnitsGiB} {
		for _, pol := range []string{PolicyRandom, PolicyBestFit, "binpack", "spread", "fgd", "gpuslice"} {
			t.Run(string(u)+"/"+pol, func(t *testing.T) {
				cfg := Config{Nodes: nodes, Pods: pods, Seed: 42, Policy: pol, Units: u}
				run, err := Simulate(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := Defrag(context.Background(), cfg, 0)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(run.Alloc100, rep.Alloc, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
					t.Errorf("allocation at 100%% arrived (-Simulate +Defrag):\n%s", diff)
				}
				p := rep.Plan
				if rep.Arrived < 100 || p.FreedGPUs < 0 || p.FreedGPUs != p.FreeWholeGPUsAfter-p.FreeWholeGPUsBefore || p.MovedPods != len(p.Moves) {
					t.Errorf("plan counts: %+v", rep)
				}
				if l := rep.Line("pods.csv"); !defragLine.MatchString(l) {
					t.Errorf("line %q", l)
				}
			})
		}
	}
	if _, err := Defrag(context.Background(), Config{Nodes: nodes, Pods: pods, Policy: PolicyOffline}, 0); err == nil {
		t.Error("defrag of the offline reference accepted")
	}
}

// TestDefragPodRequest: a sharing pod keeps its own request and models; a
// whole-GPU pod in gib mode asks its node's whole GPUs and may only move to
// that model (a 16 GiB request on a 32 GiB GPU would not be the whole GPU).
func TestDefragPodRequest(t *testing.T) {
	nodes := []trace.Node{{Name: "t4", CPUMilli: 64000, GPUs: 2, Model: "T4"}, {Name: "v", CPUMilli: 64000, GPUs: 2, Model: "V100M32"}}
	um, err := newUnitMap(UnitsGiB)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newUnitState(nodes, um, allocator.Binpack{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pod  trace.Pod
		want allocator.ContainerRequest
		node string
		mods []string
	}{
		{"sharing", trace.Pod{Name: "s", CPUMilli: 1, NumGPU: 1, GPUMilli: 500, Models: []string{"T4", "V100M32"}},
			allocator.ContainerRequest{Name: "main", Slices: 8, Count: 1}, "", []string{"T4", "V100M32"}},
		{"whole on V100M32", trace.Pod{Name: "w", CPUMilli: 1, NumGPU: 2, GPUMilli: 1000, Models: []string{"V100M32"}},
			allocator.ContainerRequest{Name: "main", Slices: 64, Count: 2}, "v", []string{"V100M32"}},
		{"whole, any model", trace.Pod{Name: "w", CPUMilli: 1, NumGPU: 1, GPUMilli: 1000},
			allocator.ContainerRequest{Name: "main", Slices: 16, Count: 1}, "t4", []string{"T4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, ok := s.placeOn(tc.pod, false)
			if !ok {
				t.Fatal("not placed")
			}
			dp := s.defragPod("p", tc.pod, pl)
			if tc.node != "" && dp.Node != tc.node {
				t.Errorf("node %s, want %s", dp.Node, tc.node)
			}
			if diff := cmp.Diff(tc.want, dp.Request.Containers[0]); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.mods, dp.Request.Models); diff != "" {
				t.Errorf("models (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(pl.charges, dp.Charges); diff != "" {
				t.Errorf("charges (-placement +advisor):\n%s", diff)
			}
		})
	}
}

// TestMainDefrag runs the command's defrag mode: one DEFRAG line per policy
// and seed, in order, the offline reference left out; defrag and
// departures together are refused.
func TestMainDefrag(t *testing.T) {
	o := CLIOptions{Trace: "../trace/testdata/pods.csv", NodeList: "../trace/testdata/nodes.csv", Seeds: []uint64{42, 43},
		Policies: []string{"binpack", PolicyOffline, "gpuslice"}, Parallel: 2, Quiet: true, Defrag: true, Units: UnitsGiB}
	var out bytes.Buffer
	if err := Main(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		m := defragLine.FindStringSubmatch(string(l))
		if m == nil {
			t.Fatalf("line %q", l)
		}
		got = append(got, m[1]+"/"+m[2]+"/"+m[3])
	}
	want := []string{"binpack/gib/42", "binpack/gib/43", "gpuslice/gib/42", "gpuslice/gib/43"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DEFRAG lines (-want +got):\n%s", diff)
	}
	o.Departures = true
	if err := Main(context.Background(), o, &out); err == nil {
		t.Error("-defrag with -departures accepted")
	}
}
