package cache_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// TestFitNodesMemoMatchesFreshFit drives a cache through random
// assumptions, forgets, confirmations, removals, expiries, inventory
// changes and node deletions, and after every step checks that FitNodes
// (which reuses outcomes of reusable policies) answers exactly what a fresh
// fit on a copy of each node answers, for pure and learning policies,
// twice in a row (the second call is served from the memo).
func TestFitNodesMemoMatchesFreshFit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		steps int
	}{
		{name: "few nodes, many steps", nodes: 5, steps: 1500},
		{name: "parallel workers", nodes: 150, steps: 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.nodes)))
			c := newCache(t, time.Minute, cache.WithGrace(30*time.Second))
			names := make([]string, tc.nodes)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
				c.SetNode(names[i], testutil.Inventory(t, names[i], 1+i%4, "T4", 16, 4))
			}
			queried := append([]string{"ghost"}, names...)
			gpuslice := mustPolicy(t, allocator.PolicyGpuslice)
			learner := gpuslice.(allocator.Observer)
			policies := []allocator.Policy{allocator.Binpack{}, allocator.Spread{}, gpuslice}
			type held struct {
				uid  types.UID
				node string
				pl   *api.Placement
				gen  uint64
				size int64
			}
			var assumed, confirmed []held
			now := testutil.Now
			pick := func(hs []held) ([]held, held) {
				i := rng.IntN(len(hs))
				h := hs[i]
				return append(hs[:i], hs[i+1:]...), h
			}
			for step := range tc.steps {
				var what string
				switch op := rng.IntN(11); {
				case op < 4:
					node, size := names[rng.IntN(len(names))], int64(1+rng.IntN(8))
					uid := types.UID(fmt.Sprintf("p%d", step))
					if pl, gen, err := testutil.Assume(t, c, uid, node, testutil.Request(size)); err == nil {
						assumed = append(assumed, held{uid: uid, node: node, pl: pl, gen: gen, size: size})
					}
					what = "assume on " + node
				case op == 4 && len(assumed) > 0:
					var h held
					assumed, h = pick(assumed)
					c.Forget(h.uid, h.gen)
					what = "forget"
				case op == 5 && len(assumed) > 0:
					var h held
					assumed, h = pick(assumed)
					p := bound(t, string(h.uid), h.node, h.size, h.pl)
					p.UID = h.uid
					c.OnPod(p)
					confirmed = append(confirmed, h)
					what = "confirm"
				case op == 6 && len(confirmed) > 0:
					var h held
					confirmed, h = pick(confirmed)
					c.RemovePod(h.uid)
					what = "remove"
				case op == 7:
					now = now.Add(20 * time.Second)
					c.Cleanup(now)
					what = "cleanup"
				case op == 8:
					node := names[rng.IntN(len(names))]
					c.SetNode(node, testutil.Inventory(t, node, 1+rng.IntN(4), "T4", int64(8+8*rng.IntN(2)), 4))
					what = "new inventory on " + node
				case op == 9:
					// The learning policy's distribution moves (a new
					// revision): a burst of one shape, as filter observes.
					r := testutil.Request(int64(1 + rng.IntN(8)))
					if rng.IntN(2) == 0 {
						r = &api.PodRequest{Containers: []api.ContainerRequest{{Name: "c", Count: int64(1 + rng.IntN(4))}}}
					}
					for range 1 + rng.IntN(100) {
						learner.Observe(r)
					}
					what = "observe"
				default:
					node := names[rng.IntN(len(names))]
					c.DeleteNode(node)
					if rng.IntN(2) == 0 {
						c.SetNode(node, testutil.Inventory(t, node, 2, "T4", 16, 4))
					}
					what = "delete " + node
				}
				req := testutil.Request(int64(1 + rng.IntN(8)))
				for _, pol := range policies {
					for call := range 2 {
						got := c.FitNodes(queried, req, pol)
						for i, name := range queried {
							if diff := compareFit(c, name, req, pol, got[i]); diff != "" {
								t.Fatalf("step %d (%s), policy %s, call %d, node %s: %s", step, what, pol.Name(), call, name, diff)
							}
						}
					}
				}
			}
		})
	}
}

func mustPolicy(t *testing.T, name string) allocator.Policy {
	t.Helper()
	p, err := allocator.NewPolicy(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// compareFit says how got differs from a fresh fit of req on a copy of
// the cache's node name ("" when it does not).
func compareFit(c *cache.Cache, name string, req *api.PodRequest, pol allocator.Policy, got cache.NodeFit) string {
	n, err := c.Node(name)
	if err != nil {
		if got.Code != allocator.UnschedulableAndUnresolvable || got.Message() == "" {
			return fmt.Sprintf("node cannot take GPU pods (%v), but FitNodes says code %v %q", err, got.Code, got.Message())
		}
		return ""
	}
	f := new(allocator.Fitter)
	a, st := f.Fit(n, req, pol)
	if !st.IsSuccess() {
		if got.Code != st.Code || got.Message() != st.Message() {
			return fmt.Sprintf("fresh fit fails with %v %q, FitNodes says %v %q", st.Code, st.Message(), got.Code, got.Message())
		}
		return ""
	}
	if want := f.NodeScore(pol, n, a); got.Code != allocator.Success || got.Score != want {
		return fmt.Sprintf("fresh fit succeeds with score %v, FitNodes says %v %q score %v", want, got.Code, got.Message(), got.Score)
	}
	return ""
}

// TestFitNodesMemoConcurrent runs FitNodes on several goroutines, for a
// few request shapes and a learning policy, while assumptions come and go
// and the policy learns; the memos are shared without a lock. Under -race
// it checks the slots' hand-over; at the end, with everything quiet, every
// answer (memo or not) must still be a fresh fit's.
func TestFitNodesMemoConcurrent(t *testing.T) {
	c := newCache(t, time.Minute)
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
		c.SetNode(names[i], testutil.Inventory(t, names[i], 4, "T4", 16, 4))
	}
	gpuslice := mustPolicy(t, allocator.PolicyGpuslice)
	learner := gpuslice.(allocator.Observer)
	policies := []allocator.Policy{allocator.Binpack{}, gpuslice}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req := testutil.Request(int64(1 + (g+i)%3))
				c.FitNodes(names, req, policies[i%2])
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 3))
		for step := range 400 {
			uid := types.UID(fmt.Sprintf("p%d", step))
			node := names[rng.IntN(len(names))]
			if _, gen, err := testutil.Assume(t, c, uid, node, testutil.Request(int64(1+rng.IntN(8)))); err == nil && rng.IntN(2) == 0 {
				c.Forget(uid, gen)
			}
			learner.Observe(testutil.Request(int64(1 + rng.IntN(8))))
		}
		close(stop)
	})
	wg.Wait()
	for _, pol := range policies {
		for size := range int64(3) {
			req := testutil.Request(1 + size)
			for call := range 2 {
				got := c.FitNodes(names, req, pol)
				for i, name := range names {
					if diff := compareFit(c, name, req, pol, got[i]); diff != "" {
						t.Fatalf("policy %s, request %d, call %d, node %s: %s", pol.Name(), 1+size, call, name, diff)
					}
				}
			}
		}
	}
}
