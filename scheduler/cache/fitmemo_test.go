package cache_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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
					// A learning policy's new revision reaches every
					// node's score within one sweep of the refresh window
					// (TestFitNodesMemoStaleRevisions); until then only
					// whether the request fits must be current.
					calls, learning := 2, pol == gpuslice
					if learning {
						calls += (len(queried) + cache.RefreshWidth(len(queried)) - 1) / cache.RefreshWidth(len(queried))
					}
					for call := range calls {
						got := c.FitNodes(queried, req, pol)
						for i, name := range queried {
							if diff := compareFit(c, name, req, pol, got[i], !learning || call >= calls-2); diff != "" {
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
// the cache's node name ("" when it does not); the score only if score.
func compareFit(c *cache.Cache, name string, req *api.PodRequest, pol allocator.Policy, got cache.NodeFit, score bool) string {
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
	if want := f.NodeScore(pol, n, a); got.Code != allocator.Success || score && got.Score != want {
		return fmt.Sprintf("fresh fit succeeds with score %v, FitNodes says %v %q score %v", want, got.Code, got.Message(), got.Score)
	}
	return ""
}

// TestFitNodesMemoConcurrent runs FitNodes on several goroutines, for a
// few request shapes and a learning policy, while assumptions come and go
// and the policy learns; the memos are shared without a lock. Under -race
// it checks the slots' hand-over; at the end, with everything quiet, every
// answer (memo or not) must fit as a fresh fit does, and after one sweep
// of the refresh window score as it does.
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
			// The last revision reaches every score within one sweep of
			// the refresh window.
			calls := 2 + (len(names)+cache.RefreshWidth(len(names))-1)/cache.RefreshWidth(len(names))
			for call := range calls {
				got := c.FitNodes(names, req, pol)
				for i, name := range names {
					if diff := compareFit(c, name, req, pol, got[i], call >= calls-2); diff != "" {
						t.Fatalf("policy %s, request %d, call %d, node %s: %s", pol.Name(), 1+size, call, name, diff)
					}
				}
			}
		}
	}
}

// seqPolicy is Binpack with a revision that the test moves by hand, and a
// score that tells which revision it was computed at: Binpack's score plus
// seqScore times the revision.
type seqPolicy struct {
	allocator.Binpack
	seq *atomic.Uint64
	// at, when set, freezes the policy at that revision (a fresh fit at an
	// earlier revision).
	at uint64
}

const seqScore = 1e6

func (p seqPolicy) Name() string { return "seq" }

func (p seqPolicy) rev() uint64 {
	if p.at != 0 {
		return p.at
	}
	return p.seq.Load()
}

func (p seqPolicy) Revision() allocator.Rev { return allocator.Rev{Of: p.seq, Seq: p.rev()} }

func (p seqPolicy) ScoreNode(v *allocator.NodeView, a *allocator.Assignment) float64 {
	return p.Binpack.ScoreNode(v, a) + seqScore*float64(p.rev())
}

// TestFitNodesMemoStaleRevisions: after a new revision of the policy,
// FitNodes keeps serving fits of earlier ones on unchanged nodes, never
// more than StaleRevisions behind, while each call refits those in its
// refresh window (RefreshWidth entries), so that within a few calls every
// answer is of the current revision again. Every answer is exactly a fresh fit at the
// revision it reports; whether the request fits is always current.
func TestFitNodesMemoStaleRevisions(t *testing.T) {
	for _, nodes := range []int{40, 300, 1000} {
		t.Run(fmt.Sprint(nodes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, uint64(nodes)))
			c := newCache(t, time.Minute)
			names := make([]string, nodes)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
				c.SetNode(names[i], testutil.Inventory(t, names[i], 1+i%4, "T4", 16, 4))
			}
			seq := new(atomic.Uint64)
			seq.Store(1)
			pol := seqPolicy{seq: seq}
			width := cache.RefreshWidth(nodes)
			req := testutil.Request(2)
			// check calls FitNodes and returns how many answers lag the
			// current revision.
			check := func(what string) (stale int) {
				t.Helper()
				cur := seq.Load()
				got := c.FitNodes(names, req, pol)
				for i, name := range names {
					at := cur
					if got[i].Code == allocator.Success {
						at = uint64(got[i].Score/seqScore + 0.5)
						if at > cur || cur-at > cache.StaleRevisions {
							t.Fatalf("%s: node %s answered at revision %d, current %d", what, name, at, cur)
						}
					}
					if at != cur {
						stale++
					}
					if diff := compareFit(c, name, req, seqPolicy{seq: seq, at: at}, got[i], true); diff != "" {
						t.Fatalf("%s: node %s (revision %d of %d): %s", what, name, at, cur, diff)
					}
				}
				return stale
			}
			check("first call")
			for round := range 30 {
				// Some nodes change, then the policy publishes one to
				// three new revisions.
				changed := rng.IntN(5)
				for range changed {
					node := names[rng.IntN(nodes)]
					// A node too full for the request keeps its fit.
					_, _, _ = testutil.Assume(t, c, types.UID(fmt.Sprintf("p%d-%d", round, rng.Int())), node, testutil.Request(int64(1+rng.IntN(4))))
				}
				bump := uint64(1 + rng.IntN(12))
				seq.Add(bump)
				prev := nodes + 1
				for call := 0; ; call++ {
					stale := check(fmt.Sprintf("round %d, call %d", round, call))
					// The first call refits the changed nodes and its
					// window, unless the revision moved too far for any
					// fit to stay.
					if call == 0 && bump <= cache.StaleRevisions && stale < nodes-changed-width {
						t.Fatalf("round %d: %d of %d answers stale after the first call: more refitted than the window %d", round, stale, nodes, width)
					}
					if call == 0 && bump > cache.StaleRevisions && stale != 0 {
						t.Fatalf("round %d: %d stale answers %d revisions behind", round, stale, bump)
					}
					if stale == 0 {
						break
					}
					if stale >= prev {
						t.Fatalf("round %d, call %d: %d stale answers, %d the call before: the memo is not catching up", round, call, stale, prev)
					}
					if refitted := prev - stale; call > 0 && refitted > width {
						t.Fatalf("round %d, call %d: %d answers refreshed, window %d", round, call, refitted, width)
					}
					if most := (nodes + width - 1) / width; call >= most {
						t.Fatalf("round %d: still %d stale answers after %d calls, the window sweeps all in %d", round, stale, call+1, most)
					}
					prev = stale
				}
			}
		})
	}
}
