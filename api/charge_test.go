package api

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPodCharge(t *testing.T) {
	type add struct {
		gpu           int
		init, sidecar bool
		slices        int64
	}
	tests := []struct {
		name string
		adds []add
		want []int64 // slices charged per GPU
	}{
		{name: "nothing", want: []int64{0, 0}},
		{name: "apps add up", adds: []add{{0, false, false, 4}, {0, false, false, 2}, {1, false, false, 1}}, want: []int64{6, 1}},
		{name: "init max over app sum", adds: []add{{0, true, false, 10}, {0, true, false, 3}, {0, false, false, 4}}, want: []int64{10, 0}},
		{name: "app sum over init max", adds: []add{{0, true, false, 3}, {0, false, false, 4}, {0, false, false, 4}}, want: []int64{8, 0}},
		{
			// Kubernetes: sidecar 2 runs for the pod's life, so apps need 4+2
			// and the init that starts after it needs 5+2.
			name: "sidecar before init",
			adds: []add{{0, true, true, 2}, {0, true, false, 5}, {0, false, false, 4}},
			want: []int64{7, 0},
		},
		{
			// The init runs before the sidecar starts: only its own 5.
			name: "init before sidecar",
			adds: []add{{0, true, false, 5}, {0, true, true, 2}, {0, false, false, 1}},
			want: []int64{5, 0},
		},
		{name: "sidecar adds to apps", adds: []add{{0, true, true, 2}, {0, false, false, 4}}, want: []int64{6, 0}},
		{name: "sidecars add up", adds: []add{{0, true, true, 2}, {0, true, true, 3}}, want: []int64{5, 0}},
		{
			name: "sidecar on another GPU does not raise the init",
			adds: []add{{1, true, true, 2}, {0, true, false, 5}, {0, false, false, 1}},
			want: []int64{5, 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c PodCharge
			c.Reset(5) // reuse: a larger Reset first must not leak
			c.Add(4, false, false, Units{Slices: 99})
			c.Reset(len(tc.want))
			for _, a := range tc.adds {
				c.Add(a.gpu, a.init, a.sidecar, Units{Slices: a.slices, Slots: 1})
			}
			got := make([]int64, c.Len())
			for i := range got {
				got[i] = c.On(i).Slices
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodChargeComponentwise(t *testing.T) {
	var c PodCharge
	c.Reset(1)
	c.Add(0, true, false, Units{Slices: 10, Core: 0, Slots: 1})
	c.Add(0, false, false, Units{Slices: 2, Core: 50, Slots: 1})
	c.Add(0, false, false, Units{Slices: 2, Core: 20, Slots: 1})
	if diff := cmp.Diff(Units{Slices: 10, Core: 70, Slots: 2}, c.On(0)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
