package mps

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
)

// recordingLimiter records every Apply; err, when set, is what Apply
// returns for a container ID.
type recordingLimiter struct {
	mu    sync.Mutex
	calls []string
	err   map[string]error
}

func (r *recordingLimiter) Apply(_ context.Context, c dmem.Container, limits []dmem.GPULimit) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := fmt.Sprintf("%s %s %s:", c.PodUID, c.QOSClass, c.ContainerID)
	for _, l := range limits {
		call += fmt.Sprintf(" %s@%s=%d", l.GPU.UUID, l.GPU.PCIBusID, l.Bytes)
	}
	r.calls = append(r.calls, call)
	return true, r.err[c.ContainerID]
}

func (r *recordingLimiter) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func TestV3LimitContainers(t *testing.T) {
	fake := buildFake(t)
	lim := &recordingLimiter{err: map[string]error{"containerd://broken": errors.New("permission denied")}}
	e := newEnv(t, fake, Config{Version: VersionV3, Scope: ScopeNode, HardLimits: lim})
	a, b := gpuA(), gpuB()
	a.PCIBusID, b.PCIBusID = "0000:07:00.0", "0000:08:00.0"
	e.start(a, b)
	if got := e.m.Enforcement(); got != api.EnforcementBinding {
		t.Errorf("Enforcement with hard limits = %q, want binding", got)
	}
	main := device.ContainerRef{PodUID: pod1, Container: "main"}
	side := device.ContainerRef{PodUID: pod2, Container: "side"}
	if _, err := e.m.ContainerEditsFor(main, []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 4096}, {UUID: "GPU-bbbb", HostIndex: 1, ContainerIndex: 1, MemLimitMiB: 4096}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ContainerEditsFor(side, []device.ContainerDevice{{UUID: "GPU-bbbb", HostIndex: 1, MemLimitMiB: 1024}}); err != nil {
		t.Fatal(err)
	}
	e.m.LimitContainers(e.ctx, []device.RunningContainer{
		{ContainerRef: main, QOSClass: "Burstable", ContainerID: "containerd://m1"},
		{ContainerRef: side, QOSClass: "Guaranteed", ContainerID: "containerd://broken"},
		// No namespace: not gpuslice's v3 container.
		{ContainerRef: device.ContainerRef{PodUID: pod1, Container: "other"}, ContainerID: "containerd://o"},
	})
	want := []string{
		pod1 + " Burstable containerd://m1: GPU-aaaa@0000:07:00.0=4294967296 GPU-bbbb@0000:08:00.0=4294967296",
		pod2 + " Guaranteed containerd://broken: GPU-bbbb@0000:08:00.0=1073741824",
	}
	if diff := cmp.Diff(want, lim.take()); diff != "" {
		t.Errorf("Apply calls (-want +got):\n%s", diff)
	}
	if got := e.m.HardLimitFailures(); got != 1 {
		t.Errorf("HardLimitFailures = %d, want 1", got)
	}
	// Every call applies again (the limiter reads back and skips what is
	// in place); a released namespace is no longer limited.
	e.clk.Step(DefaultReleaseGrace)
	e.m.ReleasePods(e.ctx, map[string]bool{pod1: true})
	e.m.LimitContainers(e.ctx, []device.RunningContainer{
		{ContainerRef: main, QOSClass: "Burstable", ContainerID: "containerd://m1"},
		{ContainerRef: side, QOSClass: "Guaranteed", ContainerID: "containerd://broken"},
	})
	if diff := cmp.Diff(want[:1], lim.take()); diff != "" {
		t.Errorf("Apply calls after the release (-want +got):\n%s", diff)
	}
}

func TestV3LimitContainersAdoptedAndOff(t *testing.T) {
	fake := buildFake(t)
	first := newEnv(t, fake, Config{Version: VersionV3})
	first.start(gpuA())
	ref := device.ContainerRef{PodUID: pod1, Container: "main"}
	if _, err := first.m.ContainerEditsFor(ref, []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 2048}}); err != nil {
		t.Fatal(err)
	}
	// Without HardLimits nothing is limited.
	first.m.LimitContainers(first.ctx, []device.RunningContainer{{ContainerRef: ref, ContainerID: "containerd://c"}})

	// An adopted namespace stands for its daemon's GPUs.
	lim := &recordingLimiter{}
	second := newEnvAt(t, fake, Config{Version: VersionV3, HardLimits: lim}, first.root)
	second.start(gpuA())
	second.m.LimitContainers(second.ctx, []device.RunningContainer{{ContainerRef: ref, ContainerID: "containerd://c"}})
	if diff := cmp.Diff([]string{pod1 + "  containerd://c: GPU-aaaa@=2147483648"}, lim.take()); diff != "" {
		t.Errorf("Apply calls (-want +got):\n%s", diff)
	}
	// Legacy MPS limits nothing.
	legacy := newEnv(t, fake, Config{HardLimits: lim})
	legacy.start(gpuA())
	legacy.m.LimitContainers(legacy.ctx, []device.RunningContainer{{ContainerRef: ref, ContainerID: "containerd://c"}})
	if got := lim.take(); len(got) != 0 {
		t.Errorf("legacy MPS applied %v", got)
	}
	if got := legacy.m.Enforcement(); got != api.EnforcementCeiling {
		t.Errorf("legacy Enforcement = %q, want ceiling", got)
	}
}
