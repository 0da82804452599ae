package cache

import (
	"fmt"
	"runtime"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// NodeFit is the outcome of fitting a pod on one node.
type NodeFit struct {
	Code allocator.Code
	// Score is the node's score for the pod (allocator.NodeScore); valid
	// when Code is Success.
	Score float64
	// Status is the allocator's reason when the pod does not fit the node's
	// GPUs.
	Status *allocator.Status
	// Reason says why the node cannot take GPU pods at all (no inventory,
	// another slice size); set when Status is nil and Code is not Success.
	Reason string
}

// Message returns the text of a failed fit.
func (f NodeFit) Message() string {
	if f.Status != nil {
		return f.Status.Message()
	}
	return f.Reason
}

// minNodesPerWorker keeps FitNodes on one goroutine for small calls.
const minNodesPerWorker = 64

// FitNodes fits the request on each named node as the cache holds it now,
// with policy pol, and returns the outcomes in the order of names. Large
// calls run on several goroutines, each with its own allocator.Fitter. For
// a reusable policy (allocator.Revision) the outcome on a node that has not
// changed since an earlier call with the same request is reused
// (fitmemo.go): in a burst of like pods only the nodes the last binds
// touched are fitted again. After the policy publishes a new revision an
// outcome of an earlier one is still reused for up to refreshSpread calls,
// while each call refits those in a moving window of node entries (an
// answer a few publications old; bind fits again).
func (c *Cache) FitNodes(names []string, req *api.PodRequest, pol allocator.Policy) []NodeFit {
	out := make([]NodeFit, len(names))
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := c.memos.take(pol, req)
	if m != nil {
		if cap(m.entries) < len(names) {
			m.entries = make([]*nodeEntry, len(names))
		}
		m.entries = m.entries[:len(names)]
		m.window(c.nextIdx)
		defer c.memos.put(m)
		defer m.record(out, c.nextIdx)
	}
	fit := func(lo, hi int) {
		f := new(allocator.Fitter)
		for i := lo; i < hi; i++ {
			e := c.nodes[names[i]]
			if m != nil && e != nil {
				if r, ok := m.lookup(e); ok {
					out[i] = r
					continue
				}
				m.entries[i] = e
			}
			out[i] = fitEntry(f, e, req, pol)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(names)+minNodesPerWorker-1)/minNodesPerWorker)
	if workers <= 1 {
		fit(0, len(names))
		return out
	}
	var wg sync.WaitGroup
	chunk := (len(names) + workers - 1) / workers
	for lo := 0; lo < len(names); lo += chunk {
		hi := min(lo+chunk, len(names))
		wg.Add(1)
		go func() {
			defer wg.Done()
			fit(lo, hi)
		}()
	}
	wg.Wait()
	return out
}

// fitEntry fits the request on one node entry (nil: not in the cache).
// Caller holds mu.
func fitEntry(f *allocator.Fitter, e *nodeEntry, req *api.PodRequest, pol allocator.Policy) NodeFit {
	n, reason := allocOf(e)
	if n == nil {
		return NodeFit{Code: allocator.UnschedulableAndUnresolvable, Reason: reason}
	}
	a, st := f.Fit(n, req, pol)
	if !st.IsSuccess() {
		return NodeFit{Code: st.Code, Status: st}
	}
	return NodeFit{Code: allocator.Success, Score: f.NodeScore(pol, n, a)}
}

// allocLocked returns the allocator state of a schedulable node, or nil and
// the reason the node cannot take GPU pods. Caller holds mu.
func (c *Cache) allocLocked(name string) (*allocator.Node, string) {
	return allocOf(c.nodes[name])
}

// allocOf is allocLocked on a looked-up entry (nil: not in the cache).
func allocOf(e *nodeEntry) (*allocator.Node, string) {
	switch {
	case e == nil:
		return nil, "node has no gpuslice GPU inventory"
	case e.alloc == nil:
		return nil, e.err
	}
	return e.alloc, ""
}

// Node returns a copy of a node's allocator state with every charged
// share, to choose a pod's GPUs on before Assume, or an error saying why the
// node cannot take GPU pods.
func (c *Cache) Node(name string) (*allocator.Node, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, reason := c.allocLocked(name)
	if n == nil {
		return nil, fmt.Errorf("node %s: %s", name, reason)
	}
	return n.Clone(), nil
}

// FreeAfterEvicting returns a copy of a node's allocator state without the
// shares of the given pods (preemption victims), or an error saying why the
// node cannot take GPU pods. Victims that hold nothing there are skipped.
// Retired shares stay: they are not the victims' to give back yet.
func (c *Cache) FreeAfterEvicting(name string, victims []types.UID) (*allocator.Node, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, reason := c.allocLocked(name)
	if n == nil {
		return nil, fmt.Errorf("node %s: %s", name, reason)
	}
	out := n.Clone()
	for _, uid := range victims {
		if p, ok := c.pods[uid]; ok && p.node == name && p.charges != nil {
			out.Apply(p.charges, -1)
		}
	}
	return out, nil
}

// HasPod reports whether the pod holds (or is assumed to hold) shares.
func (c *Cache) HasPod(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

// NodeFree is the free units of every GPU on a node, placeholders of
// vanished GPUs included (marked), in device order.
type NodeFree struct {
	Node string
	Free []allocator.Units
	// Placeholder[i] is true when GPU i vanished from the inventory and is
	// kept for the shares pods hold on it.
	Placeholder []bool
}

// Snapshot returns the free units of every node with an inventory, sorted
// by node name: one consistent cut of the cache.
func (c *Cache) Snapshot() []NodeFree {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]NodeFree, 0, len(c.nodes))
	for name, e := range c.nodes {
		if e.alloc == nil {
			continue
		}
		nf := NodeFree{Node: name, Free: make([]allocator.Units, len(e.alloc.Devices)), Placeholder: make([]bool, len(e.alloc.Devices))}
		for i := range e.alloc.Devices {
			nf.Free[i] = e.alloc.Free(i)
			nf.Placeholder[i] = e.alloc.Devices[i].Placeholder
		}
		out = append(out, nf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Stats counts the cache's pods by state (retired shares not included).
func (c *Cache) Stats() (assumedPods, confirmedPods int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range c.pods {
		if p.state == assumed {
			assumedPods++
		} else {
			confirmedPods++
		}
	}
	return
}

// Counts is the size of the cache.
type Counts struct {
	// Nodes with a usable inventory, and Unusable nodes known without one
	// (missing, unreadable, another slice size).
	Nodes, Unusable int
	// Assumed and Confirmed pods holding shares; Retired shares of moved
	// placements still charged.
	Assumed, Confirmed, Retired int
}

// Counts returns the size of the cache.
func (c *Cache) Counts() Counts {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out Counts
	for _, e := range c.nodes {
		if e.alloc == nil {
			out.Unusable++
		} else {
			out.Nodes++
		}
	}
	for _, p := range c.pods {
		if p.state == assumed {
			out.Assumed++
		} else {
			out.Confirmed++
		}
	}
	out.Retired = len(c.retired)
	return out
}

// VisitNodes calls fn with the allocator state of every node that has a
// usable inventory, in name order, under the cache's read lock: one
// consistent cut. fn must not keep n nor call the cache.
func (c *Cache) VisitNodes(fn func(n *allocator.Node)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.nodes))
	for name, e := range c.nodes {
		if e.alloc != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fn(c.nodes[name].alloc)
	}
}
