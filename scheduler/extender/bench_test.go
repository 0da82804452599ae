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
// names only), without HTTP, for every policy, two ways:
//   - cold: every pair asks for another of 16 shapes, more than the cache's
//     fit memo holds, so every node is fitted afresh each time;
//   - burst: pods of one shape, each placed (assumed) on the node
//     prioritize ranked first before the next pair, as in a burst of a
//     Job's pods: the memo serves every node the last placements left
//     alone.
func BenchmarkFilterPrioritize(b *testing.B) {
	for _, size := range []struct{ nodes, pods int }{{5000, 40000}, {1213, 9704}} {
		for _, policy := range allocator.PolicyNames() {
			for _, burst := range []bool{false, true} {
				name := fmt.Sprintf("nodes=%d/%s/cold", size.nodes, policy)
				if burst {
					name = fmt.Sprintf("nodes=%d/%s/burst", size.nodes, policy)
				}
				b.Run(name, func(b *testing.B) { benchmarkPair(b, size.nodes, size.pods, policy, burst) })
			}
		}
	}
}

func benchmarkPair(b *testing.B, nodes, pods int, policy string, burst bool) {
	ext, nodeNames := benchCluster(b, nodes, pods, policy)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		slices := int64(8)
		if !burst {
			slices = int64(1 + i%16)
		}
		p := testutil.Pod("bench", testutil.Container("c", slices, 25, 0))
		p.UID = types.UID(fmt.Sprintf("bench-%d", i))
		args := &extenderv1.ExtenderArgs{Pod: p, NodeNames: &nodeNames}
		res := ext.Filter(ctx, args)
		if len(*res.NodeNames) == 0 {
			b.Fatal("no feasible node")
		}
		scores, err := ext.Prioritize(ctx, &extenderv1.ExtenderArgs{Pod: p, NodeNames: res.NodeNames})
		if err != nil {
			b.Fatal(err)
		}
		if burst {
			best := (*res.NodeNames)[0]
			var top int64 = -1
			for _, s := range scores {
				if s.Score > top {
					best, top = s.Host, s.Score
				}
			}
			req := &allocator.PodRequest{Containers: []allocator.ContainerRequest{{Name: "c", Slices: slices, Core: 25}}}
			if _, _, err := testutil.Assume(b, ext.cache, p.UID, best, req); err != nil {
				b.Fatalf("assume on %s: %v", best, err)
			}
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
