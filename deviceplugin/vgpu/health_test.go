package vgpu

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTrackerNoticesVanishedInstances(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	var tr Tracker
	tr.Observe(reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")}))
	if ev := tr.Rescan(discover(t, f)); len(ev) != 0 {
		t.Fatalf("events on an unchanged node: %+v", ev)
	}

	// Behind the plugin's back: an mdev removed, a VF's type cleared.
	must(t, RemoveMdev(f, uuidN(2)))
	must(t, ClearVFType(f, sriovVFs[1]))
	type ev struct {
		ID      string
		Healthy bool
		Reason  string
	}
	flat := func(es []HealthEvent) []ev {
		var out []ev
		for _, e := range es {
			out = append(out, ev{e.Device.ID, e.Healthy, e.Reason})
		}
		return out
	}
	want := []ev{
		{uuidN(2), false, "mdev " + uuidN(2) + " was removed behind the plugin's back"},
		{sriovVFs[1], false, "the vGPU type of VF 0000:81:00.5 was cleared behind the plugin's back"},
	}
	if d := cmp.Diff(want, flat(tr.Rescan(discover(t, f)))); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if ev := tr.Rescan(discover(t, f)); len(ev) != 0 {
		t.Errorf("events repeated: %+v", ev)
	}

	// Back (the admin undid it): healthy again.
	must(t, SetVFType(f, sriovVFs[1], 557))
	want = []ev{{sriovVFs[1], true, "instance is present again"}}
	if d := cmp.Diff(want, flat(tr.Rescan(discover(t, f)))); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}

	// The parent GPU falls off the bus: every instance on it is unhealthy.
	must(t, f.RemoveDevice(mdevGPU))
	want = []ev{
		{uuidN(1), false, "parent GPU 0000:41:00.0 disappeared"},
		{uuidN(3), false, "parent GPU 0000:41:00.0 disappeared"},
	}
	if d := cmp.Diff(want, flat(tr.Rescan(discover(t, f)))); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}

	// A passthrough GPU taken off vfio-pci.
	must(t, f.WriteFile("bus/pci/devices/"+ptGPU+"/driver/unbind", []byte(ptGPU)))
	want = []ev{{ptGPU, false, `GPU 0000:c1:00.0 is no longer bound to vfio-pci (driver "")`}}
	if d := cmp.Diff(want, flat(tr.Rescan(discover(t, f)))); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestTrackerForgetsWhatReconcileRemoved(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	var tr Tracker
	tr.Observe(reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")}))
	tr.Observe(reconcile(t, r, Input{Config: decodeFile(t, "all-none.yaml")}))
	if ev := tr.Rescan(discover(t, f)); len(ev) != 0 {
		t.Errorf("instances the reconcile removed reported: %+v", ev)
	}
}
