package sim

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestDefragReplaysSimulate: the hook's state is the run's state at 100%
// arrived (the same allocation as Simulate's Alloc100), its plan's counts
// add up, and its line has the documented form.
func TestDefragReplaysSimulate(t *testing.T) {
	nodes, pods := testdata(t)
	line := regexp.MustCompile(`^DEFRAG policy=\S+ trace=pods\.csv seed=42 arrived=\d+\.\d\d alloc=\d+\.\d\d gpus=\d+ pods=\d+ freed_gpus=\d+ moved_pods=\d+ moved_slices=\d+ free_gpus_before=\d+ free_gpus_after=\d+ frag_before=\d+\.\d\d frag_after=\d+\.\d\d$`)
	for _, pol := range []string{PolicyRandom, PolicyBestFit, "binpack", "spread", "fgd", "gpuslice"} {
		t.Run(pol, func(t *testing.T) {
			cfg := Config{Nodes: nodes, Pods: pods, Seed: 42, Policy: pol}
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
			if l := rep.Line("pods.csv"); !line.MatchString(l) {
				t.Errorf("line %q", l)
			}
			t.Log(rep.Line("pods.csv"))
		})
	}
	if _, err := Defrag(context.Background(), Config{Nodes: nodes, Pods: pods, Policy: PolicyOffline}, 0); err == nil {
		t.Error("defrag of the offline reference accepted")
	}
}

// TestDefragTiny checks a plan by hand: three 1-GPU nodes and 400-milli
// pods placed by spread (one per GPU, then a second on each): at 100%
// arrived (8 pods... 3000 milli) two GPUs hold 800 and one 400 or so; see
// the assertions.
func TestDefragSharedTrace(t *testing.T) {
	const dir = "../../../shared/trace/"
	if testing.Short() {
		t.Skip("short mode")
	}
	if os.Getenv("GPUSLICE_DEFRAG_TRACE") == "" {
		t.Skip("set GPUSLICE_DEFRAG_TRACE=policy[,policy] to run the advisor on the shared trace")
	}
	nodes, pods := readSharedTrace(t, dir)
	for _, pol := range regexp.MustCompile(`,`).Split(os.Getenv("GPUSLICE_DEFRAG_TRACE"), -1) {
		rep, err := Defrag(context.Background(), Config{Nodes: nodes, Pods: pods, Seed: 42, Policy: pol}, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (advisor %v)", rep.Line("openb_pod_list_default.csv"), rep.Elapsed)
	}
}
