package deviceplugin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/klog/v2"
)

// Preferred answers GetPreferredAllocation for one container request: it
// picks the container the call is for with the matcher's eligibility and
// ranking (match.go; a bypassing pod is refused here already), and prefers
// the devices of its placement, or, when an interchangeable pod took those,
// the GPUs with room, placement's first. On a whole-instance GPU it picks
// gpu-mem devices inside one free instance (instance.go).
//
// A refusal is counted and recorded as an event as Allocate's are.
func (b *Broker) Preferred(ctx context.Context, k Kind, available, must []string, size int) ([]string, error) {
	start := time.Now()
	ids, err := b.preferred(ctx, k, available, must, size)
	b.obs.metrics.Preferred(k.Resource(), time.Since(start), err)
	if err != nil {
		b.refused(ctx, EventAllocateRefused, "GetPreferredAllocation", err)
	}
	return ids, err
}

func (b *Broker) preferred(ctx context.Context, k Kind, available, must []string, size int) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	cands, err := s.eligible(k)
	if err != nil {
		klog.FromContext(ctx).Info("Preferred allocation refused", "resource", k.Resource(), "size", size, "err", err)
		return nil, err
	}
	avail := dist{}
	for _, id := range available {
		if u, kind, _, err := ParseDeviceID(id); err == nil && kind == k {
			avail[u] = append(avail[u], id)
		}
	}
	for _, ids := range avail {
		slices.SortFunc(ids, compareIDs)
	}
	// fits reports whether GPU u can take per devices of kind k for c: on a
	// whole-instance GPU, inside one free instance (instance.go).
	fits := func(c *candidate, u string, have []string, per int) bool {
		if ik, slots := b.instanceSize(u); k == KindMem && ik > 0 {
			return b.pickInstance(s, c, u, avail[u], have, per, ik, slots) != nil
		}
		return len(avail[u]) >= per
	}
	room := func(c *candidate, gpus []string) bool {
		per := int(c.req[k]) / c.gpus
		for _, u := range gpus {
			if !fits(c, u, nil, per) {
				return false
			}
		}
		return true
	}
	var best *candidate
	for _, c := range cands {
		if c.req[k] != int64(size) {
			continue
		}
		if best == nil || rank(c, best, room(c, c.targetGPUs()), room(best, best.targetGPUs())) < 0 {
			best = c
		}
	}
	if best == nil {
		return nil, s.noCandidate(k, fmt.Sprintf("%d", size))
	}
	per := size / best.gpus
	chosen := map[string][]string{}
	var order []string
	for _, id := range must {
		u, _, _, err := ParseDeviceID(id)
		if err != nil {
			continue
		}
		if _, ok := chosen[u]; !ok {
			order = append(order, u)
		}
		chosen[u] = append(chosen[u], id)
	}
	targets := best.targetGPUs()
	if !room(best, targets) && !best.inProgress() {
		var alt []string
		for _, g := range b.gpusByIndex() {
			if fits(best, g, nil, per) && !slices.Contains(alt, g) {
				alt = append(alt, g)
			}
		}
		targets = append(slices.Clone(targets), alt...)
	}
	for _, u := range targets {
		if len(order) >= best.gpus {
			break
		}
		if _, ok := chosen[u]; !ok && fits(best, u, nil, per) {
			order = append(order, u)
			chosen[u] = nil
		}
	}
	var out []string
	for _, u := range order {
		have := chosen[u]
		if ik, slots := b.instanceSize(u); k == KindMem && ik > 0 {
			if ids := b.pickInstance(s, best, u, avail[u], have, per, ik, slots); ids != nil {
				out = append(out, ids...)
				continue
			}
		}
		for _, id := range avail[u] {
			if len(have) >= per {
				break
			}
			if !slices.Contains(have, id) {
				have = append(have, id)
			}
		}
		out = append(out, have...)
	}
	klog.FromContext(ctx).V(2).Info("Preferred allocation", "resource", k.Resource(), "pod", klog.KObj(best.pod),
		"container", best.key.Container, "gpus", order, "size", size)
	return out, nil
}

// gpusByIndex returns the healthy GPUs in NVML index order.
func (b *Broker) gpusByIndex() []string {
	gpus, _ := b.state.Snapshot()
	out := make([]string, 0, len(gpus))
	for _, g := range gpus {
		if g.Healthy {
			out = append(out, g.UUID)
		}
	}
	return out
}

func compareIDs(a, b string) int {
	ua, ka, na, _ := ParseDeviceID(a)
	ub, kb, nb, _ := ParseDeviceID(b)
	return cmp.Or(cmp.Compare(ua, ub), cmp.Compare(ka, kb), cmp.Compare(na, nb))
}
