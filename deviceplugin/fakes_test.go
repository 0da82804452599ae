package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

const testNode = "node-a"

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func gpuUUID(i int) string { return fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i) }

// testGPUs returns n GPUs of memMiB each, NUMA node i/4.
func testGPUs(n int, memMiB int64) []device.GPU {
	var out []device.GPU
	for i := 0; i < n; i++ {
		out = append(out, device.GPU{Index: i, UUID: gpuUUID(i), Model: "Test GPU", MemoryMiB: memMiB,
			PCIBusID: fmt.Sprintf("0000:%02x:00.0", 0x10+i), NUMANode: i / 4, Major: 9})
	}
	return out
}

// testConfig is the default configuration with the envvar strategy: the
// hand-off tests read a container's GPUs from NVIDIA_VISIBLE_DEVICES. The
// default cdi strategy answers the same GPUs as CDI devices
// (TestStrategies; e2e TestDevicePlugin checks them through kubelet).
func testConfig() Config {
	c := DefaultConfig()
	c.NodeName = testNode
	c.Strategy = StrategyEnvVar
	return c
}

func testState(t *testing.T, n int, memMiB int64, iso device.Isolator) *State {
	t.Helper()
	gpus, err := BuildGPUs(context.Background(), testGPUs(n, memMiB), api.DefaultSliceMiB, iso)
	if err != nil {
		t.Fatal(err)
	}
	return NewState(gpus)
}

type fakePods struct {
	mu   sync.Mutex
	pods []*corev1.Pod
}

func (f *fakePods) ListPods() ([]*corev1.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pods), nil
}

func (f *fakePods) add(p ...*corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = append(f.pods, p...)
}

func (f *fakePods) get(ns, name string) *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pods {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

// PatchPodAnnotations implements PodPatcher on the fake pods.
func (f *fakePods) PatchPodAnnotations(_ context.Context, ns, name string, uid types.UID, ann map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.pods {
		if p.Namespace == ns && p.Name == name {
			if p.UID != uid {
				return fmt.Errorf("uid precondition failed")
			}
			np := p.DeepCopy()
			for k, v := range ann {
				np.Annotations[k] = v
			}
			f.pods[i] = np
			return nil
		}
	}
	return fmt.Errorf("pod %s/%s not found", ns, name)
}

// fakePR is kubelet's pod-resources state.
type fakePR struct {
	mu   sync.Mutex
	devs map[string]map[string]map[string][]string // ns/pod -> container -> resource -> ids
	err  error
}

func newFakePR() *fakePR { return &fakePR{devs: map[string]map[string]map[string][]string{}} }

func (f *fakePR) List(context.Context) ([]*podresourcesv1.PodResources, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []*podresourcesv1.PodResources
	for _, key := range slices.Sorted(mapsKeys(f.devs)) {
		ns, name, _ := strings.Cut(key, "/")
		pr := &podresourcesv1.PodResources{Namespace: ns, Name: name}
		for _, c := range slices.Sorted(mapsKeys(f.devs[key])) {
			cr := &podresourcesv1.ContainerResources{Name: c}
			for _, r := range slices.Sorted(mapsKeys(f.devs[key][c])) {
				cr.Devices = append(cr.Devices, &podresourcesv1.ContainerDevices{ResourceName: r, DeviceIds: f.devs[key][c][r]})
			}
			pr.Containers = append(pr.Containers, cr)
		}
		out = append(out, pr)
	}
	return out, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// know makes kubelet list the pod (its app containers and sidecars, without
// devices), as kubelet does from before it admits a pod.
func (f *fakePR) know(p *corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := p.Namespace + "/" + p.Name
	if f.devs[key] == nil {
		f.devs[key] = map[string]map[string][]string{}
	}
	for _, c := range p.Spec.InitContainers {
		if api.IsSidecar(&c) && f.devs[key][c.Name] == nil {
			f.devs[key][c.Name] = map[string][]string{}
		}
	}
	for _, c := range p.Spec.Containers {
		if f.devs[key][c.Name] == nil {
			f.devs[key][c.Name] = map[string][]string{}
		}
	}
}

func (f *fakePR) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// drop forgets a pod (kubelet rejected it, or it ended).
func (f *fakePR) drop(ns, pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.devs, ns+"/"+pod)
}

func (f *fakePR) set(ns, pod, container, res string, ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ns + "/" + pod
	if f.devs[key] == nil {
		f.devs[key] = map[string]map[string][]string{}
	}
	if f.devs[key][container] == nil {
		f.devs[key][container] = map[string][]string{}
	}
	f.devs[key][container][res] = ids
}

// ctr describes a test container: name, init, mem, core, count.
type ctr struct {
	name             string
	init             bool
	sidecar          bool   // a restartable init container (init is implied)
	memQ             string // a raw gpu-mem quantity, instead of mem
	mem, core, count int64
	// placement: GPU indexes (empty: no placement entry)
	gpus []int
}

type podSpec struct {
	name       string
	created    time.Time
	assigned   time.Time
	node       string // placement node, default testNode
	noPlace    bool
	containers []ctr
}

func makePod(ps podSpec) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: ps.name, UID: types.UID("uid-" + ps.name),
			CreationTimestamp: metav1.NewTime(ps.created), Annotations: map[string]string{}},
		Spec:   corev1.PodSpec{NodeName: testNode},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	pl := &api.Placement{Version: api.PlacementVersion, Node: testNode, AssignedAt: ps.assigned}
	if ps.node != "" {
		pl.Node = ps.node
	}
	for _, c := range ps.containers {
		lim := corev1.ResourceList{}
		if c.mem > 0 {
			lim[api.ResourceGPUMem] = *resource.NewQuantity(c.mem, resource.DecimalSI)
		}
		if c.core > 0 {
			lim[api.ResourceGPUCore] = *resource.NewQuantity(c.core, resource.DecimalSI)
		}
		if c.count > 0 {
			lim[api.ResourceGPUCount] = *resource.NewQuantity(c.count, resource.DecimalSI)
		}
		if c.memQ != "" {
			lim[api.ResourceGPUMem] = resource.MustParse(c.memQ)
		}
		cont := corev1.Container{Name: c.name, Resources: corev1.ResourceRequirements{Limits: lim}}
		if c.sidecar {
			c.init = true
			always := corev1.ContainerRestartPolicyAlways
			cont.RestartPolicy = &always
		}
		if c.init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, cont)
		} else {
			p.Spec.Containers = append(p.Spec.Containers, cont)
		}
		if len(c.gpus) == 0 {
			continue
		}
		cp := api.ContainerPlacement{Name: c.name, Init: c.init}
		k := int64(len(c.gpus))
		for _, g := range c.gpus {
			cp.Devices = append(cp.Devices, api.DeviceShare{UUID: gpuUUID(g), Index: g, Slices: c.mem / k, Core: c.core / k, Slots: 1})
		}
		pl.Containers = append(pl.Containers, cp)
	}
	if !ps.noPlace {
		enc, _ := pl.Encode()
		p.Annotations[api.AnnotationPlacement] = enc
	}
	return p
}

// simKubelet replays kubelet's device manager flow against a Broker:
// containers in order (init first), the container's resources in a given
// order, reusable init devices first, GetPreferredAllocation when there is a
// choice, then Allocate, then the pod-resources record, then PreStart.
type simKubelet struct {
	t         *testing.T
	b         *Broker
	pr        *fakePR
	state     *State
	allocated map[string]bool
	// prDown makes pod-resources fail during the Allocate and preferred
	// calls of the next admit (it answers again for PreStart).
	prDown bool
	resp   map[string][]map[string]string // pod/container -> envs per call
}

func newSim(t *testing.T, b *Broker, pr *fakePR, st *State) *simKubelet {
	return &simKubelet{t: t, b: b, pr: pr, state: st, allocated: map[string]bool{}, resp: map[string][]map[string]string{}}
}

// newBrokerSim is a broker over two 8 GiB GPUs behind iso that knows the
// pods specs describe, with a simulated kubelet in front of it; the pods
// fake comes back too, for the test to edit and look up.
func newBrokerSim(t *testing.T, iso device.Isolator, specs ...podSpec) (*simKubelet, *fakePods) {
	t.Helper()
	cfg := testConfig()
	st := testState(t, 2, 8192, iso)
	pods := &fakePods{}
	for _, ps := range specs {
		pods.add(makePod(ps))
	}
	pr := newFakePR()
	return newSim(t, NewBroker(&cfg, st, iso, pods, pr), pr, st), pods
}

func (k *simKubelet) available(kind Kind) []string {
	gpus, _ := k.state.Snapshot()
	var out []string
	for _, d := range BuildDevices(gpus, kind) {
		if d.Health == "Healthy" && !k.allocated[d.ID] {
			out = append(out, d.ID)
		}
	}
	sort.Strings(out)
	return out
}

// admit allocates every container of the pod; order gives the resource
// order per container (default mem, core, slot).
//
// Like kubelet, it lists the pod in pod-resources before the first call,
// does not reuse a sidecar's devices, and forgets the pod (rejects it) when
// a call fails.
func (k *simKubelet) admit(p *corev1.Pod, order []Kind) error {
	k.pr.know(p)
	if k.prDown {
		k.pr.setErr(errors.New("pod-resources down"))
		defer k.pr.setErr(nil)
	}
	err := k.allocatePod(p, order)
	if err != nil {
		k.pr.drop(p.Namespace, p.Name)
	}
	return err
}

func (k *simKubelet) allocatePod(p *corev1.Pod, order []Kind) error {
	ctx := context.Background()
	if order == nil {
		order = []Kind{KindMem, KindCore, KindSlot}
	}
	reuse := map[Kind][]string{}
	type started struct {
		name string
		mem  []string
	}
	var starts []started
	all := append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
	for i, c := range all {
		init := i < len(p.Spec.InitContainers)
		sidecar := init && api.IsSidecar(&c)
		req, _ := lenientRequest(&c)
		var memIDs []string
		for _, kind := range order {
			need := int(req[kind])
			if need == 0 {
				continue
			}
			var got []string
			for _, id := range reuse[kind] {
				if len(got) < need {
					got = append(got, id)
				}
			}
			if len(got) < need {
				avail := k.available(kind)
				if len(avail) < need-len(got) {
					return fmt.Errorf("kubelet: not enough %s", kind.Resource())
				}
				if len(avail) > need-len(got) {
					pref, err := k.b.Preferred(ctx, kind, append(slices.Clone(avail), got...), slices.Clone(got), need)
					if err != nil {
						return err
					}
					for _, id := range pref {
						if len(got) < need && slices.Contains(avail, id) && !slices.Contains(got, id) {
							got = append(got, id)
						}
					}
				}
				for _, id := range avail {
					if len(got) < need && !slices.Contains(got, id) {
						got = append(got, id)
					}
				}
			}
			r, err := k.b.Allocate(ctx, kind, got)
			if err != nil {
				return err
			}
			k.resp[p.Name+"/"+c.Name] = append(k.resp[p.Name+"/"+c.Name], r.Envs)
			for _, id := range got {
				k.allocated[id] = true
			}
			if !init || sidecar {
				k.pr.set(p.Namespace, p.Name, c.Name, kind.Resource(), got)
			}
			if init && !sidecar {
				reuse[kind] = append(reuse[kind], got...)
			} else {
				reuse[kind] = slices.DeleteFunc(reuse[kind], func(id string) bool { return slices.Contains(got, id) })
			}
			if kind == KindMem {
				memIDs = got
			}
		}
		if memIDs != nil {
			starts = append(starts, started{c.Name, memIDs})
		}
	}
	if k.prDown {
		k.pr.setErr(nil)
	}
	for _, s := range starts {
		if err := k.b.PreStart(ctx, s.mem); err != nil {
			return fmt.Errorf("prestart %s: %w", s.name, err)
		}
	}
	return nil
}

// envs returns the merged env of a container's Allocate responses.
func (k *simKubelet) envs(pod, container string) map[string]string {
	out := map[string]string{}
	for _, e := range k.resp[pod+"/"+container] {
		for key, v := range e {
			out[key] = v
		}
	}
	return out
}
