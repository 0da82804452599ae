package extender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// benchCluster builds a cache of nodes x 8 GPUs (80 GiB, 48 slots) holding
// placed pods of assorted sizes, as a cluster under load would.
func benchCluster(b *testing.B, nodes, placed int, policy string) (*Extender, []string) {
	b.Helper()
	c := cache.New(klog.Background(), 1024, time.Hour)
	nodeNames := make([]string, nodes)
	for i := range nodes {
		nodeNames[i] = fmt.Sprintf("node-%05d", i)
		c.SetNode(nodeNames[i], testutil.Inventory(b, nodeNames[i], 8, "H100", 80, 48))
	}
	sizes := []allocator.ContainerRequest{
		{Name: "c", Slices: 4}, {Name: "c", Slices: 10, Core: 30}, {Name: "c", Slices: 20}, {Name: "c", Slices: 40, Core: 50},
		{Name: "c", Slices: 80, Core: 100}, {Name: "c", Slices: 160, Count: 2}, {Name: "c", Slices: 2},
	}
	for i := range placed {
		r := &allocator.PodRequest{Containers: []allocator.ContainerRequest{sizes[i%len(sizes)]}}
		node := nodeNames[(i*7919)%nodes]
		_, _, _ = testutil.Assume(b, c, types.UID(fmt.Sprintf("pod-%d", i)), node, r)
	}
	pol, err := allocator.NewPolicy(policy)
	if err != nil {
		b.Fatal(err)
	}
	return NewExtender(c, SinglePolicy(pol), nil, nil, testingclock.NewFakePassiveClock(testutil.Now), DefaultPendingLimits()), nodeNames
}

// BenchmarkFilterPrioritize measures one filter + prioritize pair over
// 5,000 candidate nodes of 8 GPUs holding 40,000 placed pods (and over 1,213
// such nodes, the size of the trace cluster), nodeCacheCapable style (node
// names only), without HTTP, for every policy.
func BenchmarkFilterPrioritize(b *testing.B) {
	for _, size := range []struct{ nodes, pods int }{{5000, 40000}, {1213, 9704}} {
		for _, policy := range allocator.PolicyNames() {
			b.Run(fmt.Sprintf("nodes=%d/%s", size.nodes, policy), func(b *testing.B) {
				ext, nodeNames := benchCluster(b, size.nodes, size.pods, policy)
				p := testutil.Pod("bench", testutil.Container("c", 8, 25, 0))
				ctx := b.Context()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					p.UID = types.UID(fmt.Sprintf("bench-%d", i%64))
					args := &extenderv1.ExtenderArgs{Pod: p, NodeNames: &nodeNames}
					res := ext.Filter(ctx, args)
					if len(*res.NodeNames) == 0 {
						b.Fatal("no feasible node")
					}
					if _, err := ext.Prioritize(ctx, &extenderv1.ExtenderArgs{Pod: p, NodeNames: res.NodeNames}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFilterPrioritizeHTTP is BenchmarkFilterPrioritize through the
// HTTP handlers: the extender's JSON decoding of the 5,000 node names and
// the pod, and its encoding of the answers, included (no network). As
// shipped, filter answers with a shortlist of the policy's best
// DefaultShortlist nodes, so prioritize gets those; shortlist=0 answers
// with every feasible node.
func BenchmarkFilterPrioritizeHTTP(b *testing.B) {
	for _, n := range []int{DefaultShortlist, 0} {
		b.Run(fmt.Sprintf("shortlist=%d", n), func(b *testing.B) { benchmarkHTTPPair(b, n) })
	}
}

func benchmarkHTTPPair(b *testing.B, shortlist int) {
	ext, nodeNames := benchCluster(b, 5000, 40000, allocator.PolicyBinpack)
	ext.shortlist = shortlist
	h := NewHandler(klog.Background(), ext, syncedGate(), HandlerOptions{Version: "bench"})
	p := testutil.Pod("bench", testutil.Container("c", 8, 25, 0))
	body, err := json.Marshal(&extenderv1.ExtenderArgs{Pod: p, NodeNames: &nodeNames})
	if err != nil {
		b.Fatal(err)
	}
	// The prioritize call carries the filter's answer; kube-scheduler's
	// side of the JSON (decoding the answers, encoding the calls) is not
	// the extender's cost, so it is done once, outside the loop.
	call := func(path string, body []byte) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
		}
		return rec
	}
	var res extenderv1.ExtenderFilterResult
	if err := json.Unmarshal(call("/filter", body).Body.Bytes(), &res); err != nil || res.NodeNames == nil {
		b.Fatalf("filter: %v", err)
	}
	pbody, err := json.Marshal(&extenderv1.ExtenderArgs{Pod: p, NodeNames: res.NodeNames})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call("/filter", body)
		call("/prioritize", pbody)
	}
}
