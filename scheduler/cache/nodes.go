package cache

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/allocator"
)

// SetNode adds or updates a node from its inventory annotation (empty when
// the node has none), as OnNode does.
func (c *Cache) SetNode(name, inventory string) {
	c.OnNode(newNode(name, inventory, inventory != ""))
}

// OnNode adds or updates a node from what the informer read of it. The
// node's pods are charged again on the new inventory; GPUs that vanished
// while pods hold shares on them become placeholders.
func (c *Cache) OnNode(n *Node) {
	name := n.Name
	inv, reason := n.inventory(c.sliceMiB)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[name]
	if e == nil {
		e = c.addEntryLocked(name, &nodeEntry{pods: map[types.UID]struct{}{}, retired: map[uint64]struct{}{}})
	}
	if e.alloc != nil {
		e.lastCap = make(map[string]allocator.Units, len(e.alloc.Devices))
		for _, d := range e.alloc.Devices {
			e.lastCap[d.UUID] = d.Capacity
		}
	}
	e.inv, e.err, e.placeholder = inv, reason, false
	c.rebuildLocked(name, e)
}

// DeleteNode removes a node. Its pods stay until the informer deletes them,
// and are charged again if the node comes back.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.nodes[name]
	if !ok {
		return
	}
	if len(e.pods) == 0 && len(e.retired) == 0 {
		c.deleteEntryLocked(name, e)
		return
	}
	e.inv, e.err = nil, "node was deleted"
	c.rebuildLocked(name, e)
}

// rebuildLocked rebuilds the node's allocator state from its inventory and
// charges its pods and retired entries again. Caller holds mu.
func (c *Cache) rebuildLocked(name string, e *nodeEntry) {
	c.touchLocked(e)
	e.alloc = nil
	if e.inv != nil {
		e.alloc = allocator.NodeFromInventory(name, e.inv)
	}
	for uid := range e.pods {
		p := c.pods[uid]
		p.charges = nil
		c.chargeLocked(p, e)
	}
	for gen := range e.retired {
		p := c.retired[gen]
		p.charges = nil
		c.chargeLocked(p, e)
	}
}

// chargeLocked computes and applies an entry's charges on its node, if the
// node has an inventory. GPUs the placement names that the inventory lacks
// become placeholders. Caller holds mu.
func (c *Cache) chargeLocked(p *podEntry, e *nodeEntry) {
	if e.alloc == nil || p.placement == nil {
		return
	}
	c.touchLocked(e)
	if n := e.alloc.AddPlaceholders(p.placement, func(uuid string) allocator.Units { return e.lastCap[uuid] }); n > 0 {
		c.logger.Info("Placement names GPUs the node's inventory no longer lists; keeping them as placeholders", "pod", p.key, "node", p.node, "placeholders", n)
	}
	a, err := allocator.AssignmentFromPlacement(e.alloc, p.placement, p.req)
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

// unchargeLocked removes an entry's charges from its node, and drops the
// node's placeholders once no entry holds a share on them. Caller holds mu.
func (c *Cache) unchargeLocked(p *podEntry) {
	e, ok := c.nodes[p.node]
	if !ok || p.charges == nil || e.alloc == nil {
		p.charges = nil
		return
	}
	e.alloc.Apply(p.charges, -1)
	c.touchLocked(e)
	p.charges = nil
	for i, d := range e.alloc.Devices {
		if d.Placeholder && e.alloc.Used[i].IsZero() {
			c.rebuildLocked(p.node, e)
			return
		}
	}
}

// nodeLocked returns the node entry, creating a placeholder for a node the
// informer has not shown yet. Caller holds mu.
func (c *Cache) nodeLocked(name string) *nodeEntry {
	e, ok := c.nodes[name]
	if !ok {
		e = c.addEntryLocked(name, &nodeEntry{err: "node is not in the extender's cache yet", pods: map[types.UID]struct{}{}, retired: map[uint64]struct{}{}, placeholder: true})
	}
	return e
}

// dropIfEmptyLocked removes a placeholder node entry without entries.
func (c *Cache) dropIfEmptyLocked(name string, e *nodeEntry) {
	if e.placeholder && len(e.pods) == 0 && len(e.retired) == 0 {
		c.deleteEntryLocked(name, e)
	}
}

// addEntryLocked adds a new node entry with a fresh position and version.
// Caller holds mu.
func (c *Cache) addEntryLocked(name string, e *nodeEntry) *nodeEntry {
	if n := len(c.freeIdx); n > 0 {
		e.idx, c.freeIdx = c.freeIdx[n-1], c.freeIdx[:n-1]
	} else {
		e.idx = c.nextIdx
		c.nextIdx++
	}
	c.touchLocked(e)
	c.nodes[name] = e
	return e
}

// deleteEntryLocked removes a node entry and frees its position. Caller
// holds mu.
func (c *Cache) deleteEntryLocked(name string, e *nodeEntry) {
	delete(c.nodes, name)
	c.freeIdx = append(c.freeIdx, e.idx)
}

// touchLocked gives the entry a new version: every change of its inventory,
// reason or charges calls it, so FitNodes' memo of the entry goes stale.
// Caller holds mu.
func (c *Cache) touchLocked(e *nodeEntry) {
	c.version++
	e.version = c.version
}
