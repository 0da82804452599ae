package mpsiso

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
)

type fakeManager struct {
	started []mps.GPU
	devs    []mps.ContainerDevice
	events  chan mps.HealthEvent
}

func (f *fakeManager) Start(_ context.Context, g []mps.GPU) error { f.started = g; return nil }
func (f *fakeManager) Slots(mps.GPU) int64                        { return 48 }
func (f *fakeManager) Healthy(string) (bool, string)              { return false, "daemon down" }
func (f *fakeManager) Events() <-chan mps.HealthEvent             { return f.events }
func (f *fakeManager) Stop()                                      {}
func (f *fakeManager) ContainerEdits(d []mps.ContainerDevice) (*mps.ContainerEdits, error) {
	f.devs = d
	return &mps.ContainerEdits{Envs: map[string]string{"CUDA_MPS_PIPE_DIRECTORY": "/run/gpuslice/mps"},
		Mounts: []mps.Mount{{ContainerPath: "/run/gpuslice/mps", HostPath: "/run/gpuslice/mps/GPU-a/pipe"}}}, nil
}

func TestAdapter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeManager{events: make(chan mps.HealthEvent, 1)}
	iso := New(f)
	g := deviceplugin.IsolatorGPU{Index: 1, UUID: "GPU-a", MemoryMiB: 81920, Major: 9, Minor: 0}
	if err := iso.Start(ctx, []deviceplugin.IsolatorGPU{g}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]mps.GPU{{Index: 1, UUID: "GPU-a", MemoryMiB: 81920, Major: 9}}, f.started); diff != "" {
		t.Errorf("started (-want +got):\n%s", diff)
	}
	if iso.Slots(g) != 48 {
		t.Error("slots not forwarded")
	}
	edits, err := iso.ContainerEdits([]deviceplugin.ContainerDevice{{UUID: "GPU-a", HostIndex: 1, MemLimitMiB: 4096, ThreadPercentage: 25}})
	if err != nil {
		t.Fatal(err)
	}
	want := &deviceplugin.ContainerEdits{Envs: map[string]string{"CUDA_MPS_PIPE_DIRECTORY": "/run/gpuslice/mps"},
		Mounts: []deviceplugin.Mount{{ContainerPath: "/run/gpuslice/mps", HostPath: "/run/gpuslice/mps/GPU-a/pipe"}}}
	if diff := cmp.Diff(want, edits); diff != "" {
		t.Errorf("edits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]mps.ContainerDevice{{UUID: "GPU-a", HostIndex: 1, MemLimitMiB: 4096, ThreadPercentage: 25}}, f.devs); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	f.events <- mps.HealthEvent{UUID: "GPU-a", Reason: "daemon died"}
	select {
	case e := <-iso.Events():
		if diff := cmp.Diff(deviceplugin.IsolatorEvent{UUID: "GPU-a", Reason: "daemon died"}, e); diff != "" {
			t.Errorf("event (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not forwarded")
	}
}

type limitedManager struct {
	fakeManager
	max int
}

func (l *limitedManager) MaxGPUsPerContainer() int { return l.max }

func TestMaxGPUsPerContainer(t *testing.T) {
	tests := []struct {
		name string
		m    Manager
		want int
	}{
		{"manager without a limit", &fakeManager{}, 0},
		{"daemon per GPU", &limitedManager{max: 1}, 1},
		{"daemon per node", &limitedManager{max: 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := deviceplugin.MaxGPUsPerContainer(New(tc.m)); got != tc.want {
				t.Errorf("MaxGPUsPerContainer %d, want %d", got, tc.want)
			}
		})
	}
}
