package cache

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// ErrAlreadyPlaced is returned by Assume for a pod that already holds
// shares.
var ErrAlreadyPlaced = errors.New("pod already has a GPU placement")

// ErrConflict is returned by Assume when the placement's shares are no
// longer free: another pod took them since the caller's Node copy. The
// caller may choose again on a fresh copy.
var ErrConflict = errors.New("GPU shares are no longer free")

// Assume records pl, the placement the caller chose for the pod on a copy
// of the node (Node), as assumed until now + TTL, and returns the
// assumption's generation for Forget. It checks under the lock that the
// placement is consistent with req, that its GPUs are of an isolation mode
// the pod may use (api.IsolationAllowed with req.Sandbox) and that the
// shares' charges are still free on healthy GPUs; it chooses nothing
// itself.
func (c *Cache) Assume(uid types.UID, key string, pl *api.Placement, req *api.PodRequest, now time.Time) (uint64, error) {
	if err := pl.Validate(); err != nil {
		return 0, fmt.Errorf("assume %s: %w", key, err)
	}
	if err := pl.ConsistentWith(req, pl.Node); err != nil {
		return 0, fmt.Errorf("assume %s: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[uid]; ok {
		return 0, ErrAlreadyPlaced
	}
	e, ok := c.nodes[pl.Node]
	if !ok || e.alloc == nil {
		reason := "node is not in the extender's cache"
		if ok {
			reason = e.err
		}
		return 0, fmt.Errorf("node %s: %s", pl.Node, reason)
	}
	a, err := allocator.AssignmentFromPlacement(e.alloc, pl, req)
	if err != nil {
		return 0, fmt.Errorf("assume %s: %w", key, err)
	}
	for _, ch := range a.Charges {
		d := &e.alloc.Devices[ch.Device]
		if !api.IsolationAllowed(req.Sandbox, d.Isolation) {
			return 0, fmt.Errorf("pod %s on node %s: GPU %s is of isolation mode %q, which the pod (sandbox mode %q) may not use", key, pl.Node, d.UUID, d.Isolation, req.Sandbox)
		}
		if !d.Healthy || !ch.Units.Fits(e.alloc.Free(ch.Device)) {
			return 0, fmt.Errorf("pod %s on node %s, GPU %s: %w", key, pl.Node, d.UUID, ErrConflict)
		}
	}
	p := &podEntry{uid: uid, key: key, node: pl.Node, placement: pl, req: req, state: assumed, deadline: now.Add(c.ttl)}
	c.gen++
	p.gen = c.gen
	c.pods[uid] = p
	e.pods[uid] = struct{}{}
	p.charges = a.Charges
	e.alloc.Apply(a.Charges, 1)
	c.touchLocked(e)
	return p.gen, nil
}

// Forget drops an assumption whose bind failed. It does nothing when the
// assumption is gone or was confirmed, or when gen names an older one.
func (c *Cache) Forget(uid types.UID, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok && p.state == assumed && p.gen == gen {
		c.removePodLocked(uid, p)
	}
}
