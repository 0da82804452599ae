package extender

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func TestPendingPodsLimits(t *testing.T) {
	limits := PendingLimits{TTL: time.Minute, MaxPods: 3, MaxNodes: 6}
	entry := func(uid string, nodes ...string) *pendingPod {
		return &pendingPod{uid: types.UID(uid), namespace: "default", name: uid, nodes: nodes}
	}
	type step struct {
		advance time.Duration
		put     *pendingPod
		remove  string
	}
	tests := []struct {
		name      string
		steps     []step
		want      []string // UIDs held, in no particular order
		wantNodes int
	}{
		{name: "pods beyond MaxPods drop the oldest", steps: []step{
			{put: entry("a", "n1")}, {put: entry("b", "n1")}, {put: entry("c", "n1")}, {put: entry("d", "n1")},
		}, want: []string{"b", "c", "d"}, wantNodes: 3},
		{name: "node entries beyond MaxNodes drop the oldest", steps: []step{
			{put: entry("a", "n1", "n2", "n3")}, {put: entry("b", "n1", "n2")}, {put: entry("c", "n1", "n2")},
		}, want: []string{"b", "c"}, wantNodes: 4},
		{name: "the newest is kept even alone over the limit", steps: []step{
			{put: entry("a", "n1")}, {put: entry("big", "1", "2", "3", "4", "5", "6", "7")},
		}, want: []string{"big"}, wantNodes: 7},
		{name: "a new filter replaces the old and counts once", steps: []step{
			{put: entry("a", "n1", "n2")}, {put: entry("a", "n3")}, {put: entry("b", "n1")},
		}, want: []string{"a", "b"}, wantNodes: 2},
		{name: "entries expire after the TTL", steps: []step{
			{put: entry("a", "n1")}, {advance: 30 * time.Second, put: entry("b", "n1")}, {advance: 30 * time.Second},
		}, want: []string{"b"}, wantNodes: 1},
		{name: "a re-filter restarts the TTL", steps: []step{
			{put: entry("a", "n1")}, {advance: 50 * time.Second, put: entry("a", "n1")}, {advance: 50 * time.Second},
		}, want: []string{"a"}, wantNodes: 1},
		{name: "remove forgets", steps: []step{
			{put: entry("a", "n1")}, {put: entry("b", "n1", "n2")}, {remove: "b"}, {remove: "unknown"},
		}, want: []string{"a"}, wantNodes: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testingclock.NewFakePassiveClock(testutil.Now)
			s := newPendingPods(limits, clk)
			for _, st := range tc.steps {
				clk.SetTime(clk.Now().Add(st.advance))
				if st.put != nil {
					s.put(st.put)
				}
				if st.remove != "" {
					s.remove(types.UID(st.remove))
				}
			}
			var got []string
			for _, uid := range []string{"a", "b", "c", "d", "big"} {
				if _, ok := s.get(types.UID(uid)); ok {
					got = append(got, uid)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("held pods (-want +got):\n%s", diff)
			}
			if pods, nodes := s.size(); pods != len(tc.want) || nodes != tc.wantNodes {
				t.Errorf("size() = %d pods, %d nodes; want %d, %d", pods, nodes, len(tc.want), tc.wantNodes)
			}
		})
	}
}

// Bind follows only this process's own filter: a pair it did not filter,
// or a node filter did not keep, is refused without an API call and
// changes nothing.
func TestBindOnlyFilteredFeasiblePairs(t *testing.T) {
	big := testutil.Pod("big", testutil.Container("c", 20, 0, 0)) // fits the A100s only
	cpu := testutil.Pod("cpu", testutil.Container("c", 0, 0, 0))  // no GPU request
	unfiltered := testutil.Pod("unfiltered", testutil.Container("c", 4, 0, 0))
	tests := []struct {
		name    string
		pod     string
		filter  []string // nodes sent to filter (nil: no filter)
		bind    string
		podUID  string
		wantErr string
	}{
		{name: "never filtered", pod: "unfiltered", bind: "t4", wantErr: "was not filtered by this extender recently"},
		{name: "node filter found infeasible", pod: "big", filter: []string{"a100", "t4"}, bind: "t4", wantErr: "node t4 was not feasible"},
		{name: "node not sent to filter", pod: "big", filter: []string{"a100"}, bind: "cpu-only", wantErr: "node cpu-only was not feasible"},
		{name: "pod without GPU request on a node not filtered", pod: "cpu", filter: []string{"t4"}, bind: "a100", wantErr: "node a100 was not feasible"},
		{name: "uid not filtered", pod: "big", filter: []string{"a100"}, bind: "a100", podUID: "forged", wantErr: "was not filtered by this extender recently"},
		{name: "feasible pair binds", pod: "big", filter: []string{"a100", "t4"}, bind: "a100"},
		{name: "pod without GPU request on a filtered node binds", pod: "cpu", filter: []string{"t4", "a100"}, bind: "a100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext, c, client := newTestExtender(t, testNodes(t), big, cpu, unfiltered)
			p := map[string]*v1.Pod{"big": big, "cpu": cpu, "unfiltered": unfiltered}[tc.pod]
			if tc.filter != nil {
				ext.Filter(t.Context(), argsFor(p, tc.filter...))
			}
			before := testutil.FreeSlices(c)
			client.ClearActions()
			args := bindArgs(p, tc.bind)
			if tc.podUID != "" {
				args.PodUID = types.UID(tc.podUID)
			}
			err := ext.Bind(t.Context(), args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Bind = %v, want success", err)
				}
				if n := len(client.Actions()); n != 1 {
					t.Errorf("bind made %d API calls, want 1", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Bind = %v, want an error containing %q", err, tc.wantErr)
			}
			if n := len(client.Actions()); n != 0 {
				t.Errorf("refused bind made %d API calls: %v", n, client.Actions())
			}
			if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
				t.Errorf("refused bind changed the cache (-before +after):\n%s", diff)
			}
		})
	}
}
