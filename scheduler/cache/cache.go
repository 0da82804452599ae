package cache

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// podState says how sure the cache is of a pod's placement.
type podState int

const (
	// assumed: the extender chose the GPUs and is binding (or has bound) the
	// pod, but the informer has not shown the bound pod yet.
	assumed podState = iota
	// confirmed: the informer shows the pod bound with this placement.
	confirmed
)

// podEntry is a pod that holds GPU shares.
type podEntry struct {
	key       string // namespace/name, for logs
	node      string
	placement *api.Placement
	// charges are what the pod holds on its node; nil while the node (or
	// its inventory) is unknown, or when the placement does not match it.
	charges []allocator.Charge
	state   podState
	// gen identifies the assumption, so a stale expiry cannot forget a
	// newer one.
	gen uint64
}

// nodeEntry is a node and the pods placed on it.
type nodeEntry struct {
	// alloc is nil when the node publishes no usable inventory; err says why.
	alloc *allocator.Node
	err   string
	pods  map[types.UID]struct{}
	// placeholder marks an entry made for pods whose node the informer has
	// not shown yet; it is dropped with its last pod.
	placeholder bool
}

// Cache is the extender's view of GPU inventory and placements.
//
// Locking: mu guards every field below it. It is the only lock of the cache
// and a leaf: nothing is called under it that could block or take it again
// (no API call, no channel send, no go-cache call that runs the eviction
// callback). The reservations store has its own internal lock; it is touched
// only after mu is released, and its eviction callback takes mu itself.
//
// Contract, as in kube-scheduler's cache: Assume adds a pod's placement
// before the pod is bound, so the next decisions see it; Forget removes an
// assumption whose bind failed; the informer Confirms the placement when it
// shows the bound pod (AddPod/UpdatePod). An assumption that is neither
// confirmed nor forgotten expires after the reservation TTL: its shares are
// freed, on the ground that the bind never took effect.
type Cache struct {
	sliceMiB int64
	// reservations maps a pod UID to the generation of its assumption; an
	// entry expires after the TTL and then forgets that assumption.
	reservations *gocache.Cache
	ttl          time.Duration

	mu    sync.RWMutex
	nodes map[string]*nodeEntry
	pods  map[types.UID]*podEntry
	gen   uint64
	// version counts state changes, for the prioritize memo.
	version uint64
	logger  klog.Logger
}

// New returns an empty cache. sliceMiB is the cluster-wide slice size:
// a node whose inventory uses another one is not schedulable. ttl bounds how
// long an assumption lives unconfirmed.
func New(logger klog.Logger, sliceMiB int64, ttl time.Duration) *Cache {
	c := &Cache{
		sliceMiB: sliceMiB,
		ttl:      ttl,
		nodes:    map[string]*nodeEntry{},
		pods:     map[types.UID]*podEntry{},
		logger:   logger,
	}
	cleanup := ttl / 2
	if cleanup <= 0 {
		cleanup = time.Second
	}
	c.reservations = gocache.New(ttl, cleanup)
	c.reservations.OnEvicted(c.onReservationEvicted)
	return c
}

// Stop ends the reservation janitor.
func (c *Cache) Stop() {
	// go-cache stops its janitor through a finalizer only; flushing drops
	// the entries so no expiry can fire after Stop.
	c.reservations.Flush()
}

// ExpireReservations drops the reservations that are past their TTL now. The
// janitor does it every TTL/2; tests call it directly.
func (c *Cache) ExpireReservations() { c.reservations.DeleteExpired() }

func (c *Cache) onReservationEvicted(uid string, v any) {
	gen, _ := v.(uint64)
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pods[types.UID(uid)]
	if !ok || p.state != assumed || p.gen != gen {
		return
	}
	c.logger.Info("Assumed placement expired unconfirmed; freeing its GPU shares", "pod", p.key, "node", p.node)
	c.removePodLocked(types.UID(uid), p)
}

// SetNode adds or updates a node from its inventory annotation (empty when
// the node has none).
func (c *Cache) SetNode(name, inventory string) {
	e := &nodeEntry{}
	if inventory == "" {
		e.err = "node has no gpuslice GPU inventory"
	} else if inv, err := api.ParseInventory(inventory); err != nil {
		e.err = fmt.Sprintf("node's gpuslice inventory is unreadable: %v", err)
	} else if inv.SliceMiB != c.sliceMiB {
		e.err = fmt.Sprintf("node's inventory uses %d MiB slices, the cluster uses %d MiB", inv.SliceMiB, c.sliceMiB)
	} else {
		e.alloc = allocator.NodeFromInventory(name, inv)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.nodes[name]; ok {
		e.pods = old.pods
	} else {
		e.pods = map[types.UID]struct{}{}
	}
	c.nodes[name] = e
	c.version++
	// Re-apply the pods of the node on the new inventory.
	for uid := range e.pods {
		p := c.pods[uid]
		p.charges = nil
		c.chargeLocked(uid, p, e)
	}
}

// DeleteNode removes a node. Its pods stay until the informer deletes them.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.nodes[name]
	if !ok {
		return
	}
	if len(e.pods) == 0 {
		delete(c.nodes, name)
	} else {
		// Keep the pod index so a node that comes back re-applies them.
		c.nodes[name] = &nodeEntry{err: "node was deleted", pods: e.pods}
		for uid := range e.pods {
			c.pods[uid].charges = nil
		}
	}
	c.version++
}

// chargeLocked computes and applies a pod's charges on its node, if the
// node is known. Caller holds mu.
func (c *Cache) chargeLocked(uid types.UID, p *podEntry, e *nodeEntry) {
	if e.alloc == nil || p.placement == nil {
		return
	}
	a, err := allocator.AssignmentFromPlacement(e.alloc, p.placement)
	if err != nil {
		c.logger.Error(err, "Placement does not match the node's inventory; its shares are not counted", "pod", p.key, "node", p.node)
		return
	}
	p.charges = a.Charges
	e.alloc.Apply(p.charges, 1)
	if err := e.alloc.Overcommitted(); err != nil {
		c.logger.Error(err, "GPU over-committed after adding a placement", "pod", p.key)
	}
}

// nodeLocked returns the node entry, creating a placeholder for a node the
// informer has not shown yet. Caller holds mu.
func (c *Cache) nodeLocked(name string) *nodeEntry {
	e, ok := c.nodes[name]
	if !ok {
		e = &nodeEntry{err: "node is not in the extender's cache yet", pods: map[types.UID]struct{}{}, placeholder: true}
		c.nodes[name] = e
	}
	return e
}

func (c *Cache) removePodLocked(uid types.UID, p *podEntry) {
	if e, ok := c.nodes[p.node]; ok {
		if p.charges != nil && e.alloc != nil {
			e.alloc.Apply(p.charges, -1)
		}
		delete(e.pods, uid)
		if e.placeholder && len(e.pods) == 0 {
			delete(c.nodes, p.node)
		}
	}
	delete(c.pods, uid)
	c.version++
}

// ErrAlreadyPlaced is returned by Assume for a pod that already holds
// shares.
var ErrAlreadyPlaced = errors.New("pod already has a GPU placement")

// AssumeFunc chooses an assignment for a pod on a node while the cache is
// locked: it sees the node with every confirmed and assumed placement.
type AssumeFunc func(n *allocator.Node) (*allocator.Assignment, *allocator.Status)

// Assume runs choose on the node under the lock and, if it succeeds, records
// the placement as assumed and returns it with the assumption's generation.
func (c *Cache) Assume(uid types.UID, key, nodeName string, now time.Time, choose AssumeFunc) (*api.Placement, uint64, error) {
	c.mu.Lock()
	if _, ok := c.pods[uid]; ok {
		c.mu.Unlock()
		return nil, 0, ErrAlreadyPlaced
	}
	e, ok := c.nodes[nodeName]
	if !ok || e.alloc == nil {
		reason := "node is not in the extender's cache"
		if ok {
			reason = e.err
		}
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("node %s: %s", nodeName, reason)
	}
	a, st := choose(e.alloc)
	if !st.IsSuccess() {
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("pod no longer fits node %s: %s", nodeName, st.Message())
	}
	c.gen++
	gen := c.gen
	p := &podEntry{key: key, node: nodeName, placement: a.Placement(e.alloc, now), charges: a.Charges, state: assumed, gen: gen}
	c.pods[uid] = p
	e.pods[uid] = struct{}{}
	e.alloc.Apply(a.Charges, 1)
	c.version++
	c.mu.Unlock()
	c.reservations.Set(string(uid), gen, c.ttl)
	return p.placement, gen, nil
}

// Forget drops an assumption whose bind failed. It does nothing when the
// assumption is gone or was confirmed, or when gen names an older one.
func (c *Cache) Forget(uid types.UID, gen uint64) {
	c.mu.Lock()
	p, ok := c.pods[uid]
	forgot := ok && p.state == assumed && p.gen == gen
	if forgot {
		c.removePodLocked(uid, p)
	}
	c.mu.Unlock()
	if forgot {
		c.reservations.Delete(string(uid))
	}
}

// AddPod records (or confirms) the placement of a bound pod seen by the
// informer. A pod without node or placement is ignored.
func (c *Cache) AddPod(uid types.UID, key, nodeName, placement string) {
	if nodeName == "" || placement == "" {
		return
	}
	pl, err := api.ParsePlacement(placement)
	if err != nil {
		c.logger.Error(err, "Ignoring a pod with an unreadable placement annotation", "pod", key)
		return
	}
	if pl.Node != nodeName {
		c.logger.Error(nil, "Ignoring a pod whose placement names another node", "pod", key, "node", nodeName, "placementNode", pl.Node)
		return
	}
	c.mu.Lock()
	wasAssumed := false
	if p, ok := c.pods[uid]; ok {
		if p.state == confirmed && p.node == nodeName && samePlacement(p.placement, pl) {
			c.mu.Unlock()
			return
		}
		wasAssumed = p.state == assumed
		// The annotation is the truth: replace whatever the cache held.
		c.removePodLocked(uid, p)
	}
	p := &podEntry{key: key, node: nodeName, placement: pl, state: confirmed}
	e := c.nodeLocked(nodeName)
	c.pods[uid] = p
	e.pods[uid] = struct{}{}
	c.chargeLocked(uid, p, e)
	c.version++
	c.mu.Unlock()
	if wasAssumed {
		c.reservations.Delete(string(uid))
	}
}

func samePlacement(a, b *api.Placement) bool {
	if a == nil || b == nil || a.Node != b.Node || len(a.Containers) != len(b.Containers) {
		return false
	}
	for i := range a.Containers {
		x, y := a.Containers[i], b.Containers[i]
		if x.Name != y.Name || x.Init != y.Init || len(x.Devices) != len(y.Devices) {
			return false
		}
		for j := range x.Devices {
			if x.Devices[j] != y.Devices[j] {
				return false
			}
		}
	}
	return true
}

// RemovePod frees a pod's shares (the pod was deleted or finished).
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	p, ok := c.pods[uid]
	if ok {
		c.removePodLocked(uid, p)
	}
	c.mu.Unlock()
	if ok {
		c.reservations.Delete(string(uid))
	}
}

// HasPod reports whether the pod holds (or is assumed to hold) shares.
func (c *Cache) HasPod(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

// View is the cache's state as Read hands it to its callback. It is valid
// only during that callback, under the read lock.
type View struct{ c *Cache }

// Node returns the allocator state of a schedulable node, or nil and the
// reason the node cannot take GPU pods. The node must not be modified: clone
// it to try changes.
func (v View) Node(name string) (*allocator.Node, string) {
	e, ok := v.c.nodes[name]
	switch {
	case !ok:
		return nil, "node has no gpuslice GPU inventory"
	case e.alloc == nil:
		return nil, e.err
	}
	return e.alloc, ""
}

// Charges returns what a pod holds on a node: nil when the pod holds nothing
// there (unknown pod, another node, or a placement that is not counted).
func (v View) Charges(uid types.UID, node string) []allocator.Charge {
	p, ok := v.c.pods[uid]
	if !ok || p.node != node {
		return nil
	}
	return p.charges
}

// Read runs f with the cache read-locked. f must not block, call the API
// server or modify what the view returns.
func (c *Cache) Read(f func(View)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	f(View{c})
}

// NodeFree is the free units of every GPU on a node, for tests and the
// inspect view.
type NodeFree struct {
	Node string
	Free []allocator.Units
}

// Snapshot returns the free units of every node with an inventory, sorted
// by node name.
func (c *Cache) Snapshot() []NodeFree {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]NodeFree, 0, len(c.nodes))
	for name, e := range c.nodes {
		if e.alloc == nil {
			continue
		}
		nf := NodeFree{Node: name, Free: make([]allocator.Units, len(e.alloc.Devices))}
		for i := range e.alloc.Devices {
			nf.Free[i] = e.alloc.Free(i)
		}
		out = append(out, nf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Stats counts the cache's pods by state.
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
