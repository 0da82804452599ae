package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// mpsLike is an isolator whose edits depend on the thread percentage, like
// the MPS mode's.
type mpsLike struct{ NoIsolation }

func (mpsLike) Mode() api.IsolationMode { return api.IsolationMPS }

func (mpsLike) ContainerEdits(devs []device.ContainerDevice) (*device.ContainerEdits, error) {
	var mem []string
	pct := 100
	for _, d := range devs {
		mem = append(mem, fmt.Sprintf("%d=%dM", d.ContainerIndex, d.MemLimitMiB))
		if d.ThreadPercentage > 0 {
			pct = min(pct, d.ThreadPercentage)
		}
	}
	return &device.ContainerEdits{Envs: map[string]string{
		"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT":  strings.Join(mem, ","),
		"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": fmt.Sprint(pct),
	}}, nil
}

type admitStep struct {
	pod     string
	order   []Kind
	wantErr string
	// prDown: pod-resources fails during this admission's calls.
	prDown bool
	// reconcile after this step (and check that no share is named twice).
	reconcile bool
}

func share(g int, slices, core, slots int64) api.DeviceShare {
	return api.DeviceShare{UUID: gpuUUID(g), Index: g, Slices: slices, Core: core, Slots: slots}
}

func TestHandOff(t *testing.T) {
	none := NoIsolation{SlotsPerGPU: 8}
	tests := []struct {
		name  string
		iso   device.Isolator
		pods  []podSpec
		steps []admitStep
		// wantEnv: "pod/container" -> expected subset of the merged env.
		wantEnv map[string]map[string]string
		// wantAlloc: pod -> the allocated annotation's containers.
		wantAlloc map[string][]api.ContainerPlacement
		// wantRewritten: pods whose placement must have been rewritten.
		wantRewritten []string
	}{{
		name:  "single GPU follows the placement",
		pods:  []podSpec{{name: "a", containers: []ctr{{name: "c", mem: 4, gpus: []int{2}}}}},
		steps: []admitStep{{pod: "a"}},
		wantEnv: map[string]map[string]string{"a/c": {
			EnvNVIDIAVisibleDevices: gpuUUID(2), EnvCUDAVisibleDevices: gpuUUID(2)}},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {{Name: "c", Devices: []api.DeviceShare{share(2, 4, 0, 1)}}}},
	}, {
		name:  "multi-GPU container, core and count before mem, placement order kept",
		pods:  []podSpec{{name: "a", containers: []ctr{{name: "c", mem: 8, core: 100, count: 2, gpus: []int{3, 1}}}}},
		steps: []admitStep{{pod: "a", order: []Kind{KindCore, KindSlot, KindMem}}},
		wantEnv: map[string]map[string]string{"a/c": {
			EnvCUDAVisibleDevices: gpuUUID(3) + "," + gpuUUID(1)}},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {{Name: "c", Devices: []api.DeviceShare{share(3, 4, 50, 1), share(1, 4, 50, 1)}}}},
	}, {
		name: "identical pods admitted out of order: kubelet lists only the admitted pod, which gets its own share",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 16, gpus: []int{0}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 16, gpus: []int{1}}}},
		},
		steps: []admitStep{{pod: "b", reconcile: true}, {pod: "a"}},
		wantAlloc: map[string][]api.ContainerPlacement{
			"a": {{Name: "c", Devices: []api.DeviceShare{share(0, 16, 0, 1)}}},
			"b": {{Name: "c", Devices: []api.DeviceShare{share(1, 16, 0, 1)}}},
		},
	}, {
		name: "twin swap (pod-resources down at admission): both placements rewritten in one reconcile",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 16, gpus: []int{0}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 16, gpus: []int{1}}}},
		},
		steps: []admitStep{{pod: "b", prDown: true, reconcile: true}, {pod: "a"}},
		wantAlloc: map[string][]api.ContainerPlacement{
			"a": {{Name: "c", Devices: []api.DeviceShare{share(1, 16, 0, 1)}}},
			"b": {{Name: "c", Devices: []api.DeviceShare{share(0, 16, 0, 1)}}},
		},
		wantRewritten: []string{"a", "b"},
	}, {
		name: "full request vector: core arriving first picks the right pod",
		iso:  mpsLike{none},
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, core: 30, gpus: []int{0}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 4, core: 70, gpus: []int{0}}}},
		},
		steps: []admitStep{{pod: "b", order: []Kind{KindCore, KindMem}}, {pod: "a", order: []Kind{KindCore, KindMem}}},
		wantEnv: map[string]map[string]string{
			"a/c": {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "30", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=4096M"},
			"b/c": {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "70"},
		},
		wantAlloc: map[string][]api.ContainerPlacement{
			"a": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 30, 1)}}},
			"b": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 70, 1)}}},
		},
	}, {
		name: "mem first with differing shares, pod-resources down: the wrong pod's core share is refused",
		iso:  mpsLike{none},
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, core: 30, gpus: []int{0}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 4, core: 70, gpus: []int{0}}}},
		},
		steps: []admitStep{{pod: "b", order: []Kind{KindMem, KindCore}, prDown: true, wantErr: "is being allocated"}},
	}, {
		name: "mem first with differing shares: kubelet lists only the admitted pod",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, core: 30, gpus: []int{0}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 4, core: 70, gpus: []int{0}}}},
		},
		steps: []admitStep{{pod: "b", order: []Kind{KindMem, KindCore}}, {pod: "a", order: []Kind{KindMem, KindCore}}},
		wantAlloc: map[string][]api.ContainerPlacement{
			"a": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 30, 1)}}},
			"b": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 70, 1)}}},
		},
	}, {
		name:  "pod that bypassed the extender is refused",
		pods:  []podSpec{{name: "a", noPlace: true, containers: []ctr{{name: "c", mem: 4}}}},
		steps: []admitStep{{pod: "a", wantErr: "bypass the gpuslice scheduler extender"}},
	}, {
		name:  "stale placement for another node is refused",
		pods:  []podSpec{{name: "a", node: "node-b", containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}}},
		steps: []admitStep{{pod: "a", wantErr: "stale placement"}},
	}, {
		name:  "request that differs from every placement is refused",
		pods:  []podSpec{{name: "a", containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}}},
		steps: []admitStep{{pod: "a"}, {pod: "a", wantErr: "no container on node node-a"}},
	}, {
		name: "init container devices reused by the app container",
		pods: []podSpec{{name: "a", containers: []ctr{
			{name: "i", init: true, mem: 4, gpus: []int{0}},
			{name: "c", mem: 4, gpus: []int{1}},
		}}},
		steps: []admitStep{{pod: "a"}},
		wantEnv: map[string]map[string]string{
			"a/i": {EnvNVIDIAVisibleDevices: gpuUUID(0)},
			"a/c": {EnvNVIDIAVisibleDevices: gpuUUID(0)},
		},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {
			{Name: "i", Init: true, Devices: []api.DeviceShare{share(0, 4, 0, 1)}},
			{Name: "c", Devices: []api.DeviceShare{share(0, 4, 0, 1)}},
		}},
		wantRewritten: []string{"a"},
	}, {
		name: "multi-container pod: each container its own GPUs",
		pods: []podSpec{{name: "a", containers: []ctr{
			{name: "c1", mem: 2, gpus: []int{0}},
			{name: "c2", mem: 6, core: 60, count: 2, gpus: []int{2, 3}},
		}}},
		steps: []admitStep{{pod: "a", order: []Kind{KindSlot, KindMem, KindCore}}},
		wantEnv: map[string]map[string]string{
			"a/c1": {EnvNVIDIAVisibleDevices: gpuUUID(0)},
			"a/c2": {EnvNVIDIAVisibleDevices: gpuUUID(2) + "," + gpuUUID(3)},
		},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {
			{Name: "c1", Devices: []api.DeviceShare{share(0, 2, 0, 1)}},
			{Name: "c2", Devices: []api.DeviceShare{share(2, 3, 30, 1), share(3, 3, 30, 1)}},
		}},
	}, {
		name: "sidecar: allocated first, on its own GPU, never reused by the app container",
		pods: []podSpec{{name: "a", containers: []ctr{
			{name: "s", sidecar: true, mem: 4, gpus: []int{0}},
			{name: "c", mem: 4, gpus: []int{1}},
		}}},
		steps: []admitStep{{pod: "a", reconcile: true}},
		wantEnv: map[string]map[string]string{
			"a/s": {EnvNVIDIAVisibleDevices: gpuUUID(0)},
			"a/c": {EnvNVIDIAVisibleDevices: gpuUUID(1)},
		},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {
			{Name: "s", Init: true, Devices: []api.DeviceShare{share(0, 4, 0, 1)}},
			{Name: "c", Devices: []api.DeviceShare{share(1, 4, 0, 1)}},
		}},
	}, {
		name: "sidecar and app container of one shape on one GPU, with a twin pod waiting",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "s", sidecar: true, mem: 4, gpus: []int{2}}, {name: "c", mem: 4, gpus: []int{2}}}},
			{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "s", sidecar: true, mem: 4, gpus: []int{3}}, {name: "c", mem: 4, gpus: []int{3}}}},
		},
		steps: []admitStep{{pod: "b"}, {pod: "a"}},
		wantAlloc: map[string][]api.ContainerPlacement{
			"a": {{Name: "s", Init: true, Devices: []api.DeviceShare{share(2, 4, 0, 1)}}, {Name: "c", Devices: []api.DeviceShare{share(2, 4, 0, 1)}}},
			"b": {{Name: "s", Init: true, Devices: []api.DeviceShare{share(3, 4, 0, 1)}}, {Name: "c", Devices: []api.DeviceShare{share(3, 4, 0, 1)}}},
		},
	}, {
		name: "bypass: a pod without placement is refused at its first call while a placed twin waits, and takes nothing",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}},
			{name: "x", noPlace: true, containers: []ctr{{name: "c", mem: 4}}},
		},
		steps:     []admitStep{{pod: "x", wantErr: "bypass the gpuslice scheduler extender"}, {pod: "a"}},
		wantEnv:   map[string]map[string]string{"a/c": {EnvNVIDIAVisibleDevices: gpuUUID(0)}},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 0, 1)}}}},
	}, {
		name: "bypass: a placement that is not the pod's own (another shape) is refused",
		pods: []podSpec{
			{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}},
			{name: "x", containers: []ctr{{name: "c", mem: 4, gpus: []int{0, 1}}}},
		},
		steps:     []admitStep{{pod: "x", wantErr: "does not match its request"}, {pod: "a"}},
		wantAlloc: map[string][]api.ContainerPlacement{"a": {{Name: "c", Devices: []api.DeviceShare{share(0, 4, 0, 1)}}}},
	}, {
		name:  "a fractional request is refused, not rounded",
		pods:  []podSpec{{name: "a", containers: []ctr{{name: "c", memQ: "1500m"}}}},
		steps: []admitStep{{pod: "a", wantErr: "must be a whole number"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			iso := tc.iso
			if iso == nil {
				iso = none
			}
			cfg := testConfig()
			st := testState(t, 4, 16*1024, iso)
			pods := &fakePods{}
			for _, ps := range tc.pods {
				pods.add(makePod(ps))
			}
			pr := newFakePR()
			b := NewBroker(&cfg, st, iso, pods, pr)
			sim := newSim(t, b, pr, st)
			for i, s := range tc.steps {
				sim.prDown = s.prDown
				err := sim.admit(pods.get("default", s.pod), s.order)
				switch {
				case s.wantErr == "" && err != nil:
					t.Fatalf("step %d: admit %s: %v", i, s.pod, err)
				case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
					t.Fatalf("step %d: admit %s: error %v, want one containing %q", i, s.pod, err, s.wantErr)
				}
				if s.reconcile {
					if err := b.Reconcile(ctx, pods, t0); err != nil {
						t.Fatalf("step %d: reconcile: %v", i, err)
					}
					checkNoShareTwice(t, pods, 16)
				}
			}
			for key, want := range tc.wantEnv {
				pod, c, _ := strings.Cut(key, "/")
				got := sim.envs(pod, c)
				sub := map[string]string{}
				for k := range want {
					sub[k] = got[k]
				}
				if diff := cmp.Diff(want, sub); diff != "" {
					t.Errorf("env of %s (-want +got):\n%s", key, diff)
				}
			}
			if err := b.Reconcile(ctx, pods, t0); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			for name, want := range tc.wantAlloc {
				p := pods.get("default", name)
				a, err := api.ParseAllocation(p.Annotations[api.AnnotationAllocated])
				if err != nil {
					t.Fatalf("pod %s: %v", name, err)
				}
				if diff := cmp.Diff(want, a.Containers); diff != "" {
					t.Errorf("allocation of %s (-want +got):\n%s", name, diff)
				}
				pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
				if err != nil {
					t.Fatalf("pod %s: %v", name, err)
				}
				if diff := cmp.Diff(want, pl.Containers); diff != "" {
					t.Errorf("pod %s: placement does not equal the allocation (-want +got):\n%s", name, diff)
				}
			}
			for _, name := range tc.wantRewritten {
				orig := makePod(tc.pods[indexOf(tc.pods, name)])
				if orig.Annotations[api.AnnotationPlacement] == pods.get("default", name).Annotations[api.AnnotationPlacement] {
					t.Errorf("pod %s: placement not rewritten", name)
				}
			}
			// A second reconcile has nothing left to do.
			rec := &recordingPatcher{}
			if err := b.Reconcile(ctx, rec, t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if rec.n != 0 {
				t.Errorf("second reconcile patched %d pods", rec.n)
			}
		})
	}
}

// checkNoShareTwice fails when the app containers' placements of the pods
// ask more slices of one GPU than it has.
func checkNoShareTwice(t *testing.T, pods *fakePods, slicesPerGPU int64) {
	t.Helper()
	used := map[string]int64{}
	for _, p := range pods.pods {
		pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
		if err != nil {
			continue
		}
		for _, c := range pl.Containers {
			for _, d := range c.Devices {
				if !c.Init {
					used[d.UUID] += d.Slices
				}
			}
		}
	}
	for u, n := range used {
		if n > slicesPerGPU {
			t.Errorf("placements name %d slices of GPU %s, which has %d", n, u, slicesPerGPU)
		}
	}
}

func indexOf(ps []podSpec, name string) int {
	for i, p := range ps {
		if p.name == name {
			return i
		}
	}
	return -1
}

type recordingPatcher struct{ n int }

func (r *recordingPatcher) PatchPodAnnotations(context.Context, string, string, types.UID, map[string]string) error {
	r.n++
	return nil
}

func TestAllocateUnhealthyAndUnknown(t *testing.T) {
	ctx := context.Background()
	sim, _ := newBrokerSim(t, NoIsolation{SlotsPerGPU: 4}, podSpec{name: "a", containers: []ctr{{name: "c", mem: 2, gpus: []int{0}}}})
	b := sim.b
	sim.state.SetHealth(gpuUUID(0), SourceNVML, false, "Xid 79")
	tests := []struct {
		name, want string
		ids        []string
	}{
		{"unhealthy GPU", "unhealthy GPU", []string{DeviceID(gpuUUID(0), KindMem, 0), DeviceID(gpuUUID(0), KindMem, 1)}},
		{"unknown GPU", "does not serve", []string{DeviceID("GPU-x", KindMem, 0), DeviceID("GPU-x", KindMem, 1)}},
		{"wrong kind", "not a gpuslice.io/gpu-mem device", []string{DeviceID(gpuUUID(1), KindCore, 0)}},
		{"garbage", "no GPU part", []string{"nonsense"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Allocate(ctx, KindMem, tc.ids)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRestartRebuildsFromPodResources: a new broker (a restarted plugin)
// learns what is allocated from pod-resources alone, records it, and keeps
// allocating new pods around it.
func TestRestartRebuildsFromPodResources(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	iso := NoIsolation{SlotsPerGPU: 4}
	st := testState(t, 2, 8192, iso)
	pods := &fakePods{}
	pods.add(makePod(podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 8, gpus: []int{0}}}}))
	pr := newFakePR()
	b1 := NewBroker(&cfg, st, iso, pods, pr)
	sim := newSim(t, b1, pr, st)
	if err := sim.admit(pods.get("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	// Restart before the first reconcile.
	b2 := NewBroker(&cfg, st, iso, pods, pr)
	sim.b = b2
	pods.add(makePod(podSpec{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 8, gpus: []int{1}}}}))
	if err := sim.admit(pods.get("default", "b"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b2.Reconcile(ctx, pods, t0); err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]int{"a": 0, "b": 1} {
		a, err := api.ParseAllocation(pods.get("default", name).Annotations[api.AnnotationAllocated])
		if err != nil {
			t.Fatal(err)
		}
		want := []api.ContainerPlacement{{Name: "c", Devices: []api.DeviceShare{share(g, 8, 0, 1)}}}
		if diff := cmp.Diff(want, a.Containers); diff != "" {
			t.Errorf("pod %s (-want +got):\n%s", name, diff)
		}
	}
}

func TestPodResourcesUnavailable(t *testing.T) {
	ctx := context.Background()
	sim, pods := newBrokerSim(t, NoIsolation{SlotsPerGPU: 4},
		podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}},
		podSpec{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}})
	sim.pr.setErr(errors.New("connection refused"))
	b := sim.b
	// The ledger alone keeps the two pods apart.
	for _, p := range []string{"a", "b"} {
		if err := sim.admit(pods.get("default", p), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Allocate(ctx, KindMem, []string{DeviceID(gpuUUID(1), KindMem, 0), DeviceID(gpuUUID(1), KindMem, 1), DeviceID(gpuUUID(1), KindMem, 2), DeviceID(gpuUUID(1), KindMem, 3)}); err == nil || !strings.Contains(err.Error(), "pod-resources unavailable") {
		t.Fatalf("third allocation: %v, want an error naming pod-resources", err)
	}
	if err := b.Reconcile(ctx, pods, t0); err == nil {
		t.Fatal("reconcile without pod-resources succeeded")
	}
}
