package vgpu

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// reconcileMdev sizes a vfio-mdev GPU: it removes unheld mdevs of other
// types and beyond the count (held ones are kept first), then creates what
// is missing up to available_instances.
func (r *Reconciler) reconcileMdev(ctx context.Context, g *GPU, want GPUConfig, held map[string]bool, rep *Report) {
	i := slices.IndexFunc(g.MdevTypes, func(t MdevType) bool {
		return strings.EqualFold(t.Name, want.Type) || t.ID == want.Type
	})
	if i < 0 {
		rep.problem(g.BDF, "left unchanged: vGPU type %q is not offered (offers %s)", want.Type, mdevTypeNames(g.MdevTypes))
		return
	}
	t := g.MdevTypes[i]
	var same []string
	for _, m := range g.Mdevs {
		if m.Type == t.ID {
			same = append(same, m.UUID)
			continue
		}
		if !held[m.UUID] {
			r.removeMdev(ctx, g, m, rep)
		}
	}
	slices.SortFunc(same, heldFirst(held))
	have := len(same)
	for _, u := range same[min(want.Instances, len(same)):] {
		if held[u] {
			continue
		}
		if r.removeMdev(ctx, g, Mdev{UUID: u, Type: t.ID}, rep) {
			have--
		}
	}
	missing := want.Instances - have
	if missing <= 0 {
		return
	}
	avail, err := readCount(r.FS, devPath(g.BDF, "mdev_supported_types", t.ID, "available_instances"))
	if err != nil {
		rep.problem(g.BDF, "%v", err)
		return
	}
	if avail < missing {
		rep.problem(g.BDF, "wants %d instances of %s, has %d and only %d more can be created now", want.Instances, t.Name, have, avail)
	}
	newUUID := r.NewUUID
	if newUUID == nil {
		newUUID = NewUUID
	}
	for range min(missing, avail) {
		u, err := newUUID()
		if err == nil {
			err = CreateMdev(r.FS, g.BDF, t.ID, u)
		}
		if err != nil {
			rep.problem(g.BDF, "%v", err)
			return
		}
		rep.action(ctx, Action{GPU: g.BDF, Op: OpCreateMdev, Device: u, Type: t.Name})
	}
}

func mdevTypeNames(ts []MdevType) string {
	if len(ts) == 0 {
		return "none"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = fmt.Sprintf("%s (%s)", t.Name, t.ID)
	}
	return strings.Join(names, ", ")
}
