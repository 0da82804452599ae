package deviceplugin

import (
	"context"
	"testing"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
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
			nodes := &fakeNodes{ann: map[string]string{}}
			pods := &fakePods{}
			p, err := New(testConfig(), Deps{
				Discoverer: fakeDiscoverer(testGPUs(2, 4096)), Isolator: tc.iso, Pods: pods,
				PodResources: newFakePR(), Patcher: pods, Nodes: nodes, Clock: testingclock.NewFakeClock(t0),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Setup(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.PublishInventory(ctx); err != nil {
				t.Fatal(err)
			}
			inv := nodes.inventory()
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
