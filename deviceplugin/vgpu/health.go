package vgpu

import (
	"fmt"
	"maps"
	"slices"
)

// HealthEvent is a change of an instance's health.
type HealthEvent struct {
	Device  Device
	Healthy bool
	Reason  string
}

// Tracker notices instances that vanish behind the plugin's back: an mdev
// removed by hand, a VF's type cleared, a GPU taken off vfio-pci, or a
// parent GPU that disappeared from the bus. It is fed the reconciles' reports
// (Observe) and later rescans (Rescan), and returns health transitions. The
// zero value is ready; it is not safe for concurrent use.
type Tracker struct {
	devs map[string]*tracked
}

type tracked struct {
	dev     Device
	healthy bool
}

// Observe takes a reconcile's outcome: its Devices and Kept are tracked
// (new ones as healthy), and instances the reconcile removed on purpose are
// forgotten.
func (t *Tracker) Observe(rep *Report) {
	if t.devs == nil {
		t.devs = map[string]*tracked{}
	}
	for _, a := range rep.Actions {
		if a.Op == OpRemoveMdev || a.Op == OpClearVFType {
			delete(t.devs, a.Device)
		}
	}
	for _, list := range [][]Device{rep.Devices, rep.Kept} {
		for _, d := range list {
			if _, ok := t.devs[d.ID]; !ok {
				t.devs[d.ID] = &tracked{dev: d, healthy: true}
			}
		}
	}
}

// Forget stops tracking ids (the plugin no longer serves them).
func (t *Tracker) Forget(ids ...string) {
	for _, id := range ids {
		delete(t.devs, id)
	}
}

// Rescan compares a fresh discovery with the tracked instances and returns
// the transitions, in ID order: a tracked instance that is gone becomes
// unhealthy (its reason says whether its parent GPU disappeared, cannot be
// read, or the instance alone went), and an unhealthy one that is back
// becomes healthy.
func (t *Tracker) Rescan(n *Node) []HealthEvent {
	present := map[string]Device{}
	for _, d := range n.Devices() {
		present[d.ID] = d
	}
	var out []HealthEvent
	for _, id := range t.ids() {
		tr := t.devs[id]
		_, here := present[id]
		switch {
		case here && !tr.healthy:
			tr.healthy = true
			out = append(out, HealthEvent{Device: tr.dev, Healthy: true, Reason: "instance is present again"})
		case !here && tr.healthy:
			tr.healthy = false
			out = append(out, HealthEvent{Device: tr.dev, Healthy: false, Reason: goneReason(n, tr.dev)})
		}
	}
	return out
}

func goneReason(n *Node, d Device) string {
	g, ok := n.GPU(d.Parent)
	switch {
	case !ok:
		return fmt.Sprintf("parent GPU %s disappeared", d.Parent)
	case g.Err != nil:
		return fmt.Sprintf("parent GPU %s cannot be read: %v", d.Parent, g.Err)
	case d.Kind == KindMdev:
		return fmt.Sprintf("mdev %s was removed behind the plugin's back", d.ID)
	case d.Kind == KindVF:
		return fmt.Sprintf("the vGPU type of VF %s was cleared behind the plugin's back", d.ID)
	default:
		return fmt.Sprintf("GPU %s is no longer bound to vfio-pci (driver %q)", d.ID, g.Driver)
	}
}

func (t *Tracker) ids() []string { return slices.Sorted(maps.Keys(t.devs)) }
