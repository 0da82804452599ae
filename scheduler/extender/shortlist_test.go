package extender

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func TestShortlist(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		name      string
		scores    []float64
		n         int
		wantNames []string
	}{
		{name: "off", scores: []float64{1, 2, 3, 4, 5}, n: 0, wantNames: names},
		{name: "fewer than n", scores: []float64{1, 2, 3, 4, 5}, n: 5, wantNames: names},
		{name: "best two in sent order", scores: []float64{5, 1, 4, 2, 3}, n: 2, wantNames: []string{"a", "c"}},
		{name: "ties at the cut: the first sent", scores: []float64{1, 3, 3, 3, 9}, n: 3, wantNames: []string{"b", "c", "e"}},
		{name: "all tie", scores: []float64{7, 7, 7, 7, 7}, n: 2, wantNames: []string{"a", "b"}},
		{name: "negative scores", scores: []float64{-1, -5, -2, -9, -3}, n: 2, wantNames: []string{"a", "c"}},
	}
	for _, tc := range tests {
		gotNames, gotScores := shortlist(names, tc.scores, tc.n)
		if diff := cmp.Diff(tc.wantNames, gotNames); diff != "" {
			t.Errorf("%s: names (-want +got):\n%s", tc.name, diff)
		}
		// Each kept node keeps its own score, and nothing left out
		// scored better than a node kept.
		kept := map[string]float64{}
		for i, n := range gotNames {
			kept[n] = gotScores[i]
		}
		worst := 0.0
		for i, n := range gotNames {
			if want := tc.scores[indexOf(names, n)]; gotScores[i] != want {
				t.Errorf("%s: %s score %v, want %v", tc.name, n, gotScores[i], want)
			}
			if i == 0 || gotScores[i] < worst {
				worst = gotScores[i]
			}
		}
		for i, n := range names {
			if _, ok := kept[n]; !ok && tc.scores[i] > worst {
				t.Errorf("%s: %s (score %v) left out, but %v was kept", tc.name, n, tc.scores[i], worst)
			}
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// With a shortlist, filter answers with the policy's best feasible nodes
// only, bind accepts exactly those, and prioritize scores them from the
// memo; a pod that fits nowhere still gets every node's reason.
func TestFilterShortlist(t *testing.T) {
	var nodes []*v1.Node
	for i := range 6 {
		nodes = append(nodes, testutil.GPUNode(t, fmt.Sprintf("n%d", i), 1, "A100", 40, 48))
	}
	filler := testutil.Pod("filler", testutil.Container("c", 30, 0, 0))
	ext, _, _ := newTestExtender(t, nodes, filler)
	ext.shortlist = 2
	schedule(t, ext, filler, "n4") // binpack: n4 is now the fullest node
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	res := ext.Filter(t.Context(), argsFor(p, "n0", "n1", "n2", "n3", "n4", "n5"))
	if res.NodeNames == nil || len(*res.NodeNames) != 2 || (*res.NodeNames)[0] != "n0" || (*res.NodeNames)[1] != "n4" {
		t.Fatalf("shortlist = %v, want [n0 n4] (n4 the best, n0 the first of the ties)", res.NodeNames)
	}
	if len(res.FailedNodes)+len(res.FailedAndUnresolvableNodes) != 0 {
		t.Errorf("nodes left off the shortlist reported as failed: %+v", res)
	}
	pp, _ := ext.pending.get(p.UID)
	if pp.feasible("n1") || !pp.feasible("n4") {
		t.Errorf("bind would accept n1 (off the shortlist) or refuse n4: %+v", pp.nodes)
	}
	got, err := ext.Prioritize(t.Context(), argsFor(p, *res.NodeNames...))
	if err != nil || len(got) == 0 || got[0].Host != "n4" {
		t.Errorf("prioritize over the shortlist = %v, %v; want n4 first with the top score", got, err)
	}
	big := testutil.Pod("big", testutil.Container("c", 41, 0, 0))
	res = ext.Filter(t.Context(), argsFor(big, "n0", "n1", "n2"))
	if len(*res.NodeNames) != 0 || len(res.FailedNodes)+len(res.FailedAndUnresolvableNodes) != 3 {
		t.Errorf("a pod that fits nowhere: %+v, want no node and three reasons", res)
	}
}
