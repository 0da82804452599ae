package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFragmentation(t *testing.T) {
	n := NewNode("n", gpus(4, "A100", 40, 4))
	n.Used[0] = Units{Slices: 10} // a quarter used: 0.75 of a GPU partly free
	n.Used[1] = Units{Slices: 40} // full: nothing free
	n.Devices[2].Healthy = false  // unhealthy: not counted
	n.Used[2] = Units{Slices: 20} //
	got := map[string]float64{}
	for _, name := range PolicyNames() {
		p, err := NewPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = Fragmentation(p, n)
	}
	want := map[string]float64{PolicyBinpack: 0.75, PolicySpread: 0.75}
	for _, name := range []string{PolicyFGD, PolicyGpuslice} {
		// The learned measure: partly free and small leftovers count, a
		// wholly free GPU that the seed classes use does not.
		if got[name] <= 0 || got[name] > 2 {
			t.Errorf("%s fragmentation %v, want in (0, 2]", name, got[name])
		}
		want[name] = got[name]
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	empty := NewNode("e", gpus(2, "A100", 40, 4))
	if f := PartlyFree(empty); f != 0 {
		t.Errorf("empty node partly free %v, want 0", f)
	}
}
