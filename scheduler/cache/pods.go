package cache

import (
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// OnPod applies a pod object as the pod informer delivers it on add or
// update: a *Pod (the informer's TransformPod) or a *v1.Pod. It confirms
// the placement of a bound pod, records the placement of a bound pod the
// cache has not seen (after a restart), and frees the shares of a pod that
// has finished: kube-scheduler, too, counts no resources for terminal pods.
// A placement is charged only when it is consistent with the pod's request;
// see the package documentation for the rule on placements that change.
func (c *Cache) OnPod(obj any) {
	pod, ok := podOf(obj)
	if !ok {
		return
	}
	if pod.terminal {
		c.RemovePod(pod.UID)
		return
	}
	if !pod.placed {
		return
	}
	key, node, pl, err := pod.key, pod.node, pod.placement, pod.err
	now := c.clock.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.pods[pod.UID]
	switch {
	case old == nil && err != nil:
		c.logger.Error(err, "Not charging a pod's placement annotation", "pod", key, "node", node)
	case old == nil:
		c.addLocked(&podEntry{uid: pod.UID, key: key, node: node, placement: pl, req: pod.req, state: confirmed})
	case err == nil && old.placement.Equal(pl):
		c.confirmLocked(old, node)
	case err != nil:
		c.logger.Error(err, "Ignoring an inconsistent placement change on a pod; keeping its charges", "pod", key, "node", node)
		c.confirmLocked(old, node)
	case !pod.reconcile:
		c.logger.Error(errors.New("placement changed without a matching allocation record"),
			"Ignoring a placement change not made by the device plugin's reconcile; keeping the pod's charges", "pod", key, "node", node)
		c.confirmLocked(old, node)
	default:
		// The device plugin's reconcile moved the shares: charge the new
		// ones now, and keep the old ones charged for the grace period.
		c.logger.V(2).Info("Device plugin moved a pod's GPU shares; keeping the old ones charged for the grace period", "pod", key, "node", node, "grace", c.grace)
		c.retireLocked(old, now)
		c.addLocked(&podEntry{uid: pod.UID, key: key, node: node, placement: pl, req: pod.req, state: confirmed})
	}
}

// confirmLocked marks an assumed entry as confirmed once the informer shows
// the pod bound to the entry's node. Caller holds mu.
func (c *Cache) confirmLocked(p *podEntry, node string) {
	if p.state == assumed && p.node == node {
		p.state = confirmed
		p.deadline = time.Time{}
	}
}

// addLocked records an entry under its UID and charges it. Caller holds mu.
func (c *Cache) addLocked(p *podEntry) {
	c.gen++
	p.gen = c.gen
	e := c.nodeLocked(p.node)
	c.pods[p.uid] = p
	e.pods[p.uid] = struct{}{}
	c.chargeLocked(p, e)
}

// retireLocked turns a pod's entry into a retired one that stays charged
// until now + grace. Caller holds mu.
func (c *Cache) retireLocked(p *podEntry, now time.Time) {
	if e, ok := c.nodes[p.node]; ok {
		delete(e.pods, p.uid)
		e.retired[p.gen] = struct{}{}
	}
	delete(c.pods, p.uid)
	p.state = retired
	p.deadline = now.Add(c.grace)
	c.retired[p.gen] = p
}

// removePodLocked frees a pod's shares and forgets it. Caller holds mu.
func (c *Cache) removePodLocked(uid types.UID, p *podEntry) {
	delete(c.pods, uid)
	c.releaseLocked(p, func(e *nodeEntry) { delete(e.pods, uid) })
}

// removeRetiredLocked frees retired shares. Caller holds mu.
func (c *Cache) removeRetiredLocked(gen uint64, p *podEntry) {
	delete(c.retired, gen)
	c.releaseLocked(p, func(e *nodeEntry) { delete(e.retired, gen) })
}

// releaseLocked unlinks p from its node entry with unlink, frees its
// charges, and drops the node entry if it is an empty placeholder. Caller
// holds mu.
func (c *Cache) releaseLocked(p *podEntry, unlink func(*nodeEntry)) {
	e, ok := c.nodes[p.node]
	if ok {
		unlink(e)
	}
	c.unchargeLocked(p)
	if ok {
		c.dropIfEmptyLocked(p.node, e)
	}
}

// RemovePod frees a pod's shares (the pod was deleted or finished). Shares
// it held before a move stay charged until their grace period ends.
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok {
		c.removePodLocked(uid, p)
	}
}
