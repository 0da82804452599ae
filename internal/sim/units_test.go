package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/internal/trace"
)

func TestParseUnits(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: "milli"},
		{in: "milli", want: "milli"},
		{in: "gib", want: "gib"},
		{in: "GiB", err: `unknown units "GiB"`},
	} {
		got, err := ParseUnits(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseUnits(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ParseUnits(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestShareGiB(t *testing.T) {
	for _, tc := range []struct{ milli, want int64 }{
		{1, 1}, {62, 1}, {63, 2}, {250, 4}, {460, 8}, {500, 8}, {810, 13}, {999, 16},
	} {
		if got := ShareGiB(tc.milli); got != tc.want {
			t.Errorf("ShareGiB(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

// TestGiBUnitsCharge places one pod of each kind on a 24 GiB A10 node in gib
// mode and checks the slices charged: a sharing pod its fixed GiB, a
// whole-GPU pod the whole GPU.
func TestGiBUnitsCharge(t *testing.T) {
	nodes := []trace.Node{{Name: "n", CPUMilli: 64000, GPUs: 2, Model: "A10"}}
	for _, tc := range []struct {
		name string
		pod  trace.Pod
		want float64 // percent of the node's 48 GiB
	}{
		{"share of 500 milli is 8 GiB", trace.Pod{Name: "s", CPUMilli: 1000, NumGPU: 1, GPUMilli: 500}, 100 * 8.0 / 48},
		{"whole GPU is 24 GiB", trace.Pod{Name: "w", CPUMilli: 1000, NumGPU: 1, GPUMilli: 1000}, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Simulate(context.Background(), Config{Nodes: nodes, Pods: []trace.Pod{tc.pod}, Seed: 1, Policy: "binpack", Target: 0.01, Units: UnitsGiB})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, r.Alloc130); d != "" {
				t.Errorf("allocation (-want +got):\n%s", d)
			}
		})
	}
	if _, err := Simulate(context.Background(), Config{Nodes: []trace.Node{{Name: "x", CPUMilli: 1000, GPUs: 1, Model: "H9000"}}, Pods: []trace.Pod{{Name: "p", NumGPU: 1, GPUMilli: 1000}}, Seed: 1, Policy: "binpack", Units: UnitsGiB}); err == nil || !strings.Contains(err.Error(), "H9000") {
		t.Errorf("unknown model: error %v, want one naming the model", err)
	}
}

// TestDepartures replays a three-pod timeline on one GPU: a whole-GPU pod
// leaves at t=10, so the pod that arrives at t=20 fits; the one arriving at
// t=5 does not (the GPU is full then) and is counted as failed.
func TestDepartures(t *testing.T) {
	nodes := []trace.Node{{Name: "n", CPUMilli: 64000, GPUs: 1, Model: "T4"}}
	pods := []trace.Pod{
		{Name: "a", CPUMilli: 1000, NumGPU: 1, GPUMilli: 1000, Created: 0, Deleted: 10, Deletes: true},
		{Name: "b", CPUMilli: 1000, NumGPU: 1, GPUMilli: 500, Created: 5, Deleted: 30, Deletes: true},
		{Name: "c", CPUMilli: 1000, NumGPU: 1, GPUMilli: 500, Created: 20},
	}
	for _, u := range []Units{UnitsMilli, UnitsGiB} {
		r, err := Departures(context.Background(), Config{Nodes: nodes, Pods: pods, Seed: 1, Policy: "binpack", Units: u}, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := struct{ Placed, Failed int }{r.Placed, r.Failed}
		if d := cmp.Diff(struct{ Placed, Failed int }{2, 1}, got); d != "" {
			t.Errorf("%s: placed/failed (-want +got):\n%s", u, d)
		}
		if r.PeakAlloc != 100 || r.FinalAlloc != 50 {
			t.Errorf("%s: peak %.2f final %.2f, want 100 and 50", u, r.PeakAlloc, r.FinalAlloc)
		}
	}
	if _, err := Departures(context.Background(), Config{Nodes: nodes, Pods: pods[2:], Seed: 1, Policy: "binpack"}, 3); err == nil {
		t.Error("a pod list without deletion times was accepted")
	}
}
