package deviceplugin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// reconcileEnv runs the broker with the kubelet simulator over two GPUs of
// 8 slices: pod a placed and admitted on GPU 0, pod b placed on GPU 1 and
// not yet admitted.
type reconcileEnv struct {
	pods *fakePods
	b    *Broker
	sim  *simKubelet
}

func newReconcileEnv(t *testing.T) *reconcileEnv {
	t.Helper()
	sim, pods := newBrokerSim(t, NoIsolation{SlotsPerGPU: 4},
		podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 8, gpus: []int{0}}}},
		podSpec{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 8, gpus: []int{1}}}})
	e := &reconcileEnv{pods: pods, b: sim.b, sim: sim}
	if err := e.sim.admit(pods.get("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *reconcileEnv) edit(name, key, value string, remove bool) {
	e.pods.mu.Lock()
	defer e.pods.mu.Unlock()
	for i, p := range e.pods.pods {
		if p.Name == name {
			np := p.DeepCopy()
			if remove {
				delete(np.Annotations, key)
			} else {
				np.Annotations[key] = value
			}
			e.pods.pods[i] = np
		}
	}
}

// TestReconcileRestoresTheTruth: whatever someone writes into a running
// pod's placement or allocation, the next reconcile writes back what
// kubelet gave it, and never moves another pod.
func TestReconcileRestoresTheTruth(t *testing.T) {
	truth := []api.ContainerPlacement{{Name: "c", Devices: []api.DeviceShare{share(0, 8, 0, 1)}}}
	forged := &api.Placement{Version: api.PlacementVersion, Node: testNode, AssignedAt: t0,
		Containers: []api.ContainerPlacement{{Name: "c", Devices: []api.DeviceShare{share(1, 8, 0, 1)}}}}
	forgedEnc, _ := forged.Encode()
	tests := []struct {
		name   string
		key    string
		value  string
		remove bool
	}{
		{name: "placement moved to the other GPU", key: api.AnnotationPlacement, value: forgedEnc},
		{name: "placement unreadable", key: api.AnnotationPlacement, value: "{not json"},
		{name: "placement removed", key: api.AnnotationPlacement, remove: true},
		{name: "placement null", key: api.AnnotationPlacement, value: "null"},
		{name: "allocation forged", key: api.AnnotationAllocated, value: forgedEnc},
		{name: "allocation unreadable", key: api.AnnotationAllocated, value: "]["},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			e := newReconcileEnv(t)
			if err := e.b.Reconcile(ctx, e.pods, t0); err != nil {
				t.Fatal(err)
			}
			bBefore := e.pods.get("default", "b").Annotations
			e.edit("a", tc.key, tc.value, tc.remove)
			if err := e.b.Reconcile(ctx, e.pods, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			a := e.pods.get("default", "a")
			for _, key := range []string{api.AnnotationPlacement, api.AnnotationAllocated} {
				rec, err := api.ParsePlacement(a.Annotations[key])
				if err != nil {
					t.Fatalf("%s of a: %v", key, err)
				}
				if diff := cmp.Diff(truth, rec.Containers); diff != "" {
					t.Errorf("%s of a (-truth +got):\n%s", key, diff)
				}
			}
			if diff := cmp.Diff(bBefore, e.pods.get("default", "b").Annotations); diff != "" {
				t.Errorf("pod b was changed (-before +after):\n%s", diff)
			}
			// b still gets its own share.
			if err := e.sim.admit(e.pods.get("default", "b"), nil); err != nil {
				t.Fatalf("admit b: %v", err)
			}
		})
	}
}

// TestBadInputNeverStealsOrCrashes: a pod with garbage annotations or a
// broken request is refused (never panics), takes no device, and the
// placed pod waiting beside it is still served its own share.
func TestBadInputNeverStealsOrCrashes(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		ctrs []ctr
	}{
		{name: "placement not JSON", ann: map[string]string{api.AnnotationPlacement: "{{"}},
		{name: "placement null", ann: map[string]string{api.AnnotationPlacement: "null"}},
		{name: "placement of another version", ann: map[string]string{api.AnnotationPlacement: `{"version":"v0","node":"node-a"}`}},
		{name: "placement with huge numbers", ann: map[string]string{api.AnnotationPlacement: `{"version":"` + api.PlacementVersion + `","node":"node-a","containers":[{"name":"c","devices":[{"uuid":"GPU-00000001-0000-0000-0000-000000000000","index":1,"slices":9223372036854775807,"slots":1}]}]}`}},
		{name: "placement with negative share", ann: map[string]string{api.AnnotationPlacement: `{"version":"` + api.PlacementVersion + `","node":"node-a","containers":[{"name":"c","devices":[{"uuid":"GPU-00000001-0000-0000-0000-000000000000","index":1,"slices":-8,"slots":1}]}]}`}},
		{name: "allocation garbage", ann: map[string]string{api.AnnotationAllocated: "\x00"}},
		{name: "gpu-models garbage", ann: map[string]string{api.AnnotationGPUModels: ",,"}},
		{name: "fractional request", ctrs: []ctr{{name: "c", memQ: "7500m", gpus: []int{1}}}},
		{name: "gpu-count without gpu-mem", ctrs: []ctr{{name: "c", count: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			cfg := testConfig()
			iso := NoIsolation{SlotsPerGPU: 4}
			st := testState(t, 2, 8192, iso)
			ctrs := tc.ctrs
			if ctrs == nil {
				ctrs = []ctr{{name: "c", mem: 8, gpus: []int{1}}}
			}
			x := makePod(podSpec{name: "x", assigned: t0, containers: ctrs})
			for k, v := range tc.ann {
				x.Annotations[k] = v
			}
			pods := &fakePods{}
			pods.add(x, makePod(podSpec{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 8, gpus: []int{1}}}}))
			pr := newFakePR()
			b := NewBroker(&cfg, st, iso, pods, pr)
			sim := newSim(t, b, pr, st)
			err := sim.admit(pods.get("default", "x"), nil)
			if tc.name == "allocation garbage" {
				// The placement is good; only the record is garbage.
				if err != nil {
					t.Fatalf("admit x: %v", err)
				}
			} else if err == nil {
				t.Fatal("admit x succeeded")
			}
			if err := b.Reconcile(ctx, pods, t0); err != nil {
				t.Fatal(err)
			}
			if tc.name == "allocation garbage" {
				return
			}
			if err := sim.admit(pods.get("default", "b"), nil); err != nil {
				t.Fatalf("admit b beside bad pod: %v", err)
			}
			got := sim.envs("b", "c")[EnvNVIDIAVisibleDevices]
			if got != gpuUUID(1) {
				t.Errorf("b got %q, want its own GPU %s", got, gpuUUID(1))
			}
		})
	}
}

// TestPublishInventoryOverwritesGarbage: a malformed node inventory is
// replaced, not parsed.
func TestPublishInventoryOverwritesGarbage(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes := &fakeNodes{ann: map[string]string{api.AnnotationInventory: "{garbage"}}
	inv := publishOnce(ctx, t, NoIsolation{SlotsPerGPU: 4}, nodes)
	if inv == nil || len(inv.GPUs) != 2 {
		t.Fatalf("inventory after garbage: %+v", inv)
	}
}

// limitingIsolator records the running containers of every
// LimitContainers call.
type limitingIsolator struct {
	NoIsolation
	mu    sync.Mutex
	calls [][]device.RunningContainer
}

func (l *limitingIsolator) LimitContainers(_ context.Context, running []device.RunningContainer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, running)
}

func (l *limitingIsolator) last() []device.RunningContainer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[len(l.calls)-1]
}

// TestReconcileLimitsRunningContainers: after every reconcile the isolator
// gets the containers whose status names a container ID; one without an ID
// yet is in a later call, a terminated one in none.
func TestReconcileLimitsRunningContainers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	iso := &limitingIsolator{NoIsolation: NoIsolation{SlotsPerGPU: 4}}
	sim, pods := newBrokerSim(t, iso, podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 8, gpus: []int{0}}}})
	b := sim.b
	if err := sim.admit(pods.get("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	setStatus := func(st corev1.ContainerStatus, qos corev1.PodQOSClass) {
		pods.mu.Lock()
		defer pods.mu.Unlock()
		np := pods.pods[0].DeepCopy()
		np.Status.QOSClass = qos
		np.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		pods.pods[0] = np
	}
	uid := string(pods.get("default", "a").UID)
	steps := []struct {
		name   string
		status *corev1.ContainerStatus
		want   []device.RunningContainer
	}{
		{name: "not started: no ID yet", want: nil},
		{name: "started", status: &corev1.ContainerStatus{Name: "c", ContainerID: "containerd://abc", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			want: []device.RunningContainer{{ContainerRef: device.ContainerRef{PodUID: uid, Container: "c"}, QOSClass: "Burstable", ContainerID: "containerd://abc"}}},
		{name: "terminated", status: &corev1.ContainerStatus{Name: "c", ContainerID: "containerd://abc", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}},
			want: nil},
	}
	for i, s := range steps {
		if s.status != nil {
			setStatus(*s.status, corev1.PodQOSBurstable)
		}
		if err := b.Reconcile(ctx, pods, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.want, iso.last()); diff != "" {
			t.Errorf("%s: running containers (-want +got):\n%s", s.name, diff)
		}
	}
}
