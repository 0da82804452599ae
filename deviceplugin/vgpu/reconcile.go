package vgpu

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// Input is what one Reconcile works from.
type Input struct {
	Config NodeConfig
	// Held is the set of device IDs (mdev UUIDs, VF and GPU addresses)
	// that running pods hold; those are never removed or rebound.
	Held map[string]bool
	// Models maps a GPU's PCI address to its product name (from NVML), for
	// model selectors. GPUs without a name match no model selector.
	Models map[string]string
}

// Reconciler makes the node's vGPU instances match the admin's config. It
// is not safe for concurrent use; the plugin runs one reconcile at a time.
type Reconciler struct {
	FS    sysfs.FS
	InUse InUseChecker
	// NewUUID names new mdevs; nil means NewUUID.
	NewUUID func() (string, error)

	// sriovTypes remembers each PF's SR-IOV types by ID: once every VF has
	// a type, creatable_vgpu_types may no longer list the type in use.
	sriovTypes map[string]map[int]VGPUType
}

// Reconcile discovers the node, then for every GPU the config selects
// creates the instances that are missing, removes those that are unused and
// no longer wanted, and (for passthrough with bindVFIO) rebinds the GPU to
// vfio-pci when nothing uses it. It never removes or rebinds a device in
// in.Held. A GPU whose discovery failed is left as it is. Everything it
// could not do is in the Report's Problems; the error is only for a node
// whose PCI devices cannot be listed at all, or a cancelled ctx.
func (r *Reconciler) Reconcile(ctx context.Context, in Input) (*Report, error) {
	node, err := Discover(ctx, r.FS)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	for _, e := range node.Errs {
		rep.Problems = append(rep.Problems, Problem{Reason: e.Error()})
	}
	assigned, problems := assign(in.Config, node, in.Models)
	rep.Problems = append(rep.Problems, problems...)
	changed := false
	for i := range node.GPUs {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("reconcile vGPUs: %w", err)
		}
		g := &node.GPUs[i]
		want, ok := assigned[g.BDF]
		if !ok {
			continue
		}
		if g.Err != nil {
			rep.problem(g.BDF, "left unchanged: %v", g.Err)
			continue
		}
		n := len(rep.Actions)
		r.reconcileGPU(ctx, g, want, in.Held, rep)
		changed = changed || len(rep.Actions) > n
	}
	if changed {
		if node, err = Discover(ctx, r.FS); err != nil {
			return rep, err
		}
	}
	rep.Node = node
	rep.Wanted = assigned
	for i := range node.GPUs {
		g := &node.GPUs[i]
		if want, ok := assigned[g.BDF]; ok && g.Err == nil {
			r.collect(g, want, in.Held, rep)
		}
	}
	return rep, nil
}

func (rep *Report) problem(gpu, format string, args ...any) {
	rep.Problems = append(rep.Problems, Problem{GPU: gpu, Reason: fmt.Sprintf(format, args...)})
}

func (rep *Report) action(ctx context.Context, a Action) {
	rep.Actions = append(rep.Actions, a)
	klog.FromContext(ctx).Info("vGPU reconcile", "gpu", a.GPU, "op", a.Op, "device", a.Device, "type", a.Type)
}

// assign maps each selected GPU to its config entry; the most specific
// selector wins, and a tie at the winning rank leaves the GPU unassigned
// (and reported).
func assign(c NodeConfig, n *Node, models map[string]string) (map[string]GPUConfig, []Problem) {
	type pick struct {
		entry, rank int
		tiedWith    int // another entry of the same rank, -1 for none
	}
	picks := map[string]*pick{}
	var problems []Problem
	for i, e := range c.GPUs {
		matched := 0
		for _, g := range n.GPUs {
			if !e.Select.matches(&g, models) {
				continue
			}
			matched++
			rank := e.Select.specificity()
			p := picks[g.BDF]
			switch {
			case p == nil || rank < p.rank:
				picks[g.BDF] = &pick{entry: i, rank: rank, tiedWith: -1}
			case rank == p.rank && p.tiedWith < 0:
				p.tiedWith = i
			}
		}
		if matched == 0 {
			problems = append(problems, Problem{Reason: fmt.Sprintf("gpus[%d] (%s) selects no GPU on this node", i, e.Select)})
		}
	}
	out := map[string]GPUConfig{}
	for _, g := range n.GPUs {
		p := picks[g.BDF]
		switch {
		case p == nil:
		case p.tiedWith >= 0:
			problems = append(problems, Problem{GPU: g.BDF, Reason: fmt.Sprintf(
				"left unchanged: selected by both gpus[%d] and gpus[%d] (%s)", p.entry, p.tiedWith, c.GPUs[p.entry].Select)})
		default:
			out[g.BDF] = c.GPUs[p.entry]
		}
	}
	return out, problems
}

func (s Selector) matches(g *GPU, models map[string]string) bool {
	switch {
	case s.BDF != "":
		return s.BDF == g.BDF
	case s.Index != nil:
		return *s.Index == g.Index
	case s.DeviceID != "":
		return s.DeviceID == g.DeviceID
	default:
		m, ok := models[g.BDF]
		return ok && strings.EqualFold(strings.TrimSpace(m), s.Model)
	}
}

func (r *Reconciler) reconcileGPU(ctx context.Context, g *GPU, want GPUConfig, held map[string]bool, rep *Report) {
	switch want.Mode {
	case ModeNone:
		r.removeAll(ctx, g, held, rep)
	case ModePassthrough:
		if g.Driver == VFIODriver {
			return
		}
		if !want.BindVFIO {
			rep.problem(g.BDF, "wanted for passthrough but bound to %q, not vfio-pci, and bindVFIO is not set", g.Driver)
			return
		}
		if held[g.BDF] {
			rep.problem(g.BDF, "wanted for passthrough but held by a pod; not rebound")
			return
		}
		if !r.removeAll(ctx, g, held, rep) {
			rep.problem(g.BDF, "wanted for passthrough but pods hold vGPU instances on it; not rebound")
			return
		}
		if err := BindVFIO(ctx, r.FS, g.BDF, r.InUse); err != nil {
			rep.problem(g.BDF, "%v", err)
			return
		}
		rep.action(ctx, Action{GPU: g.BDF, Op: OpBindVFIO, Device: g.BDF})
	case ModeVGPU:
		switch g.Flavour {
		case FlavourMdev:
			r.reconcileMdev(ctx, g, want, held, rep)
		case FlavourSRIOV:
			r.reconcileSRIOV(ctx, g, want, held, rep)
		default:
			if g.Driver == VFIODriver {
				rep.problem(g.BDF, "wanted for vGPU but bound to vfio-pci; rebind it to the NVIDIA vGPU manager's driver by hand")
			} else {
				rep.problem(g.BDF, "wanted for vGPU but it offers no vGPU types (is the NVIDIA vGPU manager installed; for SR-IOV GPUs, are VFs enabled with sriov-manage -e?)")
			}
		}
	}
}

// removeAll removes every unheld instance on g; it reports whether none is
// left.
func (r *Reconciler) removeAll(ctx context.Context, g *GPU, held map[string]bool, rep *Report) bool {
	clean := true
	for _, m := range g.Mdevs {
		if held[m.UUID] {
			clean = false
			continue
		}
		clean = r.removeMdev(ctx, g, m, rep) && clean
	}
	for _, vf := range g.VFs {
		if vf.CurrentType == 0 {
			continue
		}
		if held[vf.BDF] {
			clean = false
			continue
		}
		clean = r.clearVF(ctx, g, vf, rep) && clean
	}
	return clean
}

func (r *Reconciler) removeMdev(ctx context.Context, g *GPU, m Mdev, rep *Report) bool {
	t, _ := g.mdevType(m.Type)
	if err := RemoveMdev(r.FS, m.UUID); err != nil {
		rep.problem(g.BDF, "%v", err)
		return false
	}
	rep.action(ctx, Action{GPU: g.BDF, Op: OpRemoveMdev, Device: m.UUID, Type: t.Name})
	return true
}

func (r *Reconciler) clearVF(ctx context.Context, g *GPU, vf VF, rep *Report) bool {
	t, _ := r.sriovType(g, vf.CurrentType)
	if err := ClearVFType(r.FS, vf.BDF); err != nil {
		rep.problem(g.BDF, "%v", err)
		return false
	}
	rep.action(ctx, Action{GPU: g.BDF, Op: OpClearVFType, Device: vf.BDF, Type: t.Name})
	return true
}

// heldFirst orders IDs held ones first, then by ID: the instances kept are
// the held ones.
func heldFirst(held map[string]bool) func(a, b string) int {
	return func(a, b string) int {
		if held[a] != held[b] {
			if held[a] {
				return -1
			}
			return 1
		}
		return cmp.Compare(a, b)
	}
}

// collect sorts g's instances into the report: those of the wanted type
// are Devices (more than wanted only while pods hold the excess), held ones
// the config does not want are Kept.
func (r *Reconciler) collect(g *GPU, want GPUConfig, held map[string]bool, rep *Report) {
	cat := r.learn(g)
	for _, t := range cat {
		if !slices.ContainsFunc(g.SRIOVTypes, func(s VGPUType) bool { return s.ID == t.ID }) {
			g.SRIOVTypes = append(g.SRIOVTypes, t)
		}
	}
	slices.SortFunc(g.SRIOVTypes, func(a, b VGPUType) int { return a.ID - b.ID })
	for _, d := range g.Devices() {
		ok := false
		switch want.Mode {
		case ModePassthrough:
			ok = d.Kind == KindPassthrough
		case ModeVGPU:
			ok = d.Kind != KindPassthrough && typeMatches(g, d, want.Type)
		}
		switch {
		case ok:
			rep.Devices = append(rep.Devices, d)
		case held[d.ID]:
			rep.Kept = append(rep.Kept, d)
		}
	}
}

func typeMatches(g *GPU, d Device, want string) bool {
	if strings.EqualFold(d.TypeName, want) {
		return true
	}
	switch d.Kind {
	case KindMdev:
		i := slices.IndexFunc(g.Mdevs, func(m Mdev) bool { return m.UUID == d.ID })
		return i >= 0 && g.Mdevs[i].Type == want
	case KindVF:
		i := slices.IndexFunc(g.VFs, func(vf VF) bool { return vf.BDF == d.ID })
		return i >= 0 && strconv.Itoa(g.VFs[i].CurrentType) == want
	}
	return false
}
