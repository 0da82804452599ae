package vgpu

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// learn records g's SR-IOV types and returns the catalogue.
func (r *Reconciler) learn(g *GPU) map[int]VGPUType {
	if r.sriovTypes == nil {
		r.sriovTypes = map[string]map[int]VGPUType{}
	}
	cat := r.sriovTypes[g.BDF]
	if cat == nil {
		cat = map[int]VGPUType{}
		r.sriovTypes[g.BDF] = cat
	}
	for _, t := range g.SRIOVTypes {
		cat[t.ID] = t
	}
	return cat
}

func (r *Reconciler) sriovType(g *GPU, id int) (VGPUType, bool) {
	t, ok := r.learn(g)[id]
	return t, ok
}

// reconcileSRIOV sizes an SR-IOV GPU: it clears unheld VFs of other types
// and beyond the count, then gives free VFs the type, re-reading the VFs
// before each (every change alters what the others may take).
func (r *Reconciler) reconcileSRIOV(ctx context.Context, g *GPU, want GPUConfig, held map[string]bool, rep *Report) {
	cat := r.learn(g)
	id := 0
	for _, t := range cat {
		if strings.EqualFold(t.Name, want.Type) || strconv.Itoa(t.ID) == want.Type {
			id = t.ID
		}
	}
	if id == 0 {
		rep.problem(g.BDF, "left unchanged: vGPU type %q is not among the types its VFs offer", want.Type)
		return
	}
	name := cat[id].Name
	var same []string
	byBDF := map[string]VF{}
	for _, vf := range g.VFs {
		byBDF[vf.BDF] = vf
		switch {
		case vf.CurrentType == id:
			same = append(same, vf.BDF)
		case vf.CurrentType != 0 && !held[vf.BDF]:
			r.clearVF(ctx, g, vf, rep)
		}
	}
	slices.SortFunc(same, heldFirst(held))
	have := len(same)
	for _, b := range same[min(want.Instances, len(same)):] {
		if !held[b] && r.clearVF(ctx, g, byBDF[b], rep) {
			have--
		}
	}
	missing := want.Instances - have
	if missing <= 0 {
		return
	}
	// Every change of a VF's type changes what the others may take: read
	// them again before each pick.
	for ; missing > 0; missing-- {
		fresh := GPU{BDF: g.BDF}
		if err := readVFs(r.FS, &fresh); err != nil {
			rep.problem(g.BDF, "%v", err)
			return
		}
		i := slices.IndexFunc(fresh.VFs, func(vf VF) bool {
			return vf.VGPU && vf.CurrentType == 0 && slices.ContainsFunc(vf.Creatable, func(t VGPUType) bool { return t.ID == id })
		})
		if i < 0 {
			break
		}
		vf := fresh.VFs[i]
		if err := SetVFType(r.FS, vf.BDF, id); err != nil {
			rep.problem(g.BDF, "%v", err)
			return
		}
		rep.action(ctx, Action{GPU: g.BDF, Op: OpSetVFType, Device: vf.BDF, Type: name})
	}
	if missing > 0 {
		rep.problem(g.BDF, "wants %d VFs of %s; %d more could not be given the type (no free VF offers it)", want.Instances, name, missing)
	}
}
