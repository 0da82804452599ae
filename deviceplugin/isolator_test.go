package deviceplugin

import (
	"context"
	"testing"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"k8s.io/klog/v2/ktesting"
)

// limitedIsolation is NoIsolation with a limit on the GPUs per container,
// as MPS with a control daemon per GPU has.
type limitedIsolation struct {
	NoIsolation
	max int
}

func (l limitedIsolation) MaxGPUsPerContainer() int { return l.max }

func TestPublishInventoryMaxGPUsPerContainer(t *testing.T) {
	tests := []struct {
		name string
		iso  device.Isolator
		want int
	}{
		{"no limit", NoIsolation{SlotsPerGPU: 4}, 0},
		{"one GPU per container", limitedIsolation{NoIsolation{SlotsPerGPU: 4}, 1}, 1},
		{"negative means none", limitedIsolation{NoIsolation{SlotsPerGPU: 4}, -1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			inv := publishOnce(ctx, t, tc.iso, &fakeNodes{ann: map[string]string{}})
			if inv == nil {
				t.Fatal("no inventory published")
			}
			if inv.MaxGPUsPerContainer != tc.want || len(inv.GPUs) != 2 {
				t.Errorf("published maxGPUsPerContainer %d over %d GPUs, want %d over 2", inv.MaxGPUsPerContainer, len(inv.GPUs), tc.want)
			}
			if err := inv.Validate(); err != nil {
				t.Errorf("published inventory invalid: %v", err)
			}
		})
	}
}
