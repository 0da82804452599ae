package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// PodPatcher writes pod annotations (a merge patch with the pod's UID as
// precondition).
type PodPatcher interface {
	PatchPodAnnotations(ctx context.Context, namespace, name string, uid types.UID, annotations map[string]string) error
}

// podFix is one pod whose annotations must change.
type podFix struct {
	namespace, name string
	uid             types.UID
	annotations     map[string]string
	// rewritten says the placement changed; partner names the pod whose
	// placement was swapped with this one's in the same pass.
	rewritten bool
	partner   string
}

// actualContainer converts what kubelet gave a container into a placement
// entry; ok is false while the container is not completely allocated.
func (b *Broker) actualContainer(c *candidate) (api.ContainerPlacement, bool) {
	for _, k := range Kinds() {
		if int64(len(c.have[k])) != c.req[k] {
			return api.ContainerPlacement{}, false
		}
	}
	per := map[string]*api.DeviceShare{}
	for _, k := range Kinds() {
		for _, id := range c.have[k] {
			u, _, _, err := ParseDeviceID(id)
			if err != nil {
				return api.ContainerPlacement{}, false
			}
			ds := per[u]
			if ds == nil {
				g, _ := b.state.GPU(u)
				ds = &api.DeviceShare{UUID: u, Index: g.Index}
				per[u] = ds
			}
			switch k {
			case KindMem:
				ds.Slices++
			case KindCore:
				ds.Core++
			case KindSlot:
				ds.Slots++
			}
		}
	}
	pos := placementPositions(c.cp)
	out := api.ContainerPlacement{Name: c.key.Container, Init: c.key.Init}
	for _, ds := range per {
		if c.req[KindSlot] == 0 {
			// gpu-count not requested: the container still takes one slot
			// per GPU in the extender's accounting.
			ds.Slots = 1
		}
		out.Devices = append(out.Devices, *ds)
	}
	slices.SortFunc(out.Devices, func(x, y api.DeviceShare) int {
		return placementOrder(pos, x.UUID, x.Index, y.UUID, y.Index)
	})
	return out, true
}

// podState is one pod of a snapshot as the reconcile sees it.
type podState struct {
	pod   *corev1.Pod
	cands []*candidate
	// actual is what kubelet gave the pod's containers; nil while the pod
	// is not completely allocated.
	actual []api.ContainerPlacement
	// placement is the pod's current placement when readable (it may be
	// inconsistent or for another node), else nil.
	placement *api.Placement
	// started says kubelet has given the pod any device.
	started bool
}

func (b *Broker) podStates(s *snapshot) ([]*podState, map[types.UID]bool) {
	live := map[types.UID]bool{}
	byUID := map[types.UID]*podState{}
	var out []*podState
	for _, c := range s.cands {
		live[c.key.UID] = true
		ps := byUID[c.key.UID]
		if ps == nil {
			ps = &podState{pod: c.pod}
			if pl, err := api.ParsePlacement(c.pod.Annotations[api.AnnotationPlacement]); err == nil {
				ps.placement = pl
			}
			byUID[c.key.UID] = ps
			out = append(out, ps)
		}
		ps.cands = append(ps.cands, c)
		ps.started = ps.started || c.inProgress()
	}
	for _, ps := range out {
		var containers []api.ContainerPlacement
		complete := true
		for _, c := range ps.cands {
			ac, ok := b.actualContainer(c)
			switch {
			case ok:
				containers = append(containers, ac)
			case c.key.Init && c.cp != nil && !c.inProgress():
				// A finished init container is not in pod-resources;
				// without this process's record its placement stands.
				containers = append(containers, *c.cp)
			default:
				complete = false
			}
		}
		if complete && ps.started {
			ps.actual = containers
		}
	}
	return out, live
}

// swapPartner finds the pod whose placement x's devices came from: a pod
// kubelet has not started, with a usable placement equal (container by
// container, names aside) to what x got. Kubelet admitted x first and gave
// it the partner's share; the partner's placement must take x's old one.
//
// Only a pod's first record qualifies (x has no allocation yet): a pod that
// was already recorded and whose placement now disagrees was edited, and is
// only restored, never swapped with another pod.
func swapPartner(states []*podState, x *podState) *podState {
	if x.placement == nil || x.cands[0].cp == nil {
		return nil // x's own placement was not usable: nothing to hand on
	}
	if _, err := api.ParseAllocation(x.pod.Annotations[api.AnnotationAllocated]); err == nil {
		return nil
	}
	for _, y := range states {
		if y == x || y.started || y.actual != nil || y.cands[0].cp == nil {
			continue
		}
		if sameShares(y.placement.Containers, x.actual) && sameShape(y.placement.Containers, x.placement.Containers) {
			return y
		}
	}
	return nil
}

// sameShares compares two container lists position by position, ignoring
// names.
func sameShares(a, b []api.ContainerPlacement) bool {
	return slices.EqualFunc(a, b, func(x, y api.ContainerPlacement) bool {
		return x.Init == y.Init && slices.Equal(x.Devices, y.Devices)
	})
}

// sameShape compares the per-container shares of two lists, ignoring GPUs.
func sameShape(a, b []api.ContainerPlacement) bool {
	return slices.EqualFunc(a, b, func(x, y api.ContainerPlacement) bool {
		return x.Init == y.Init && slices.EqualFunc(x.Devices, y.Devices, func(p, q api.DeviceShare) bool { return p.Units() == q.Units() })
	})
}

// fixFor returns the patch that records containers as the pod's placement
// and allocation (one patch, equal containers), or nil when both already
// say so.
func (b *Broker) fixFor(ps *podState, containers []api.ContainerPlacement, now time.Time) (*podFix, error) {
	rec := &api.Placement{Version: api.PlacementVersion, Node: b.node, AssignedAt: now.UTC(), Containers: containers}
	if ps.placement != nil {
		rec.AssignedAt = ps.placement.AssignedAt
	}
	placementOK := ps.placement != nil && ps.placement.Equal(rec)
	old, err := api.ParseAllocation(ps.pod.Annotations[api.AnnotationAllocated])
	if placementOK && err == nil && old.Equal(rec) {
		return nil, nil
	}
	alloc := &api.Allocation{Version: api.AllocationVersion, Node: b.node, AllocatedAt: now.UTC(), Containers: containers}
	enc, err := alloc.Encode()
	if err != nil {
		return nil, err
	}
	fix := &podFix{namespace: ps.pod.Namespace, name: ps.pod.Name, uid: ps.pod.UID, annotations: map[string]string{api.AnnotationAllocated: enc}}
	if !placementOK {
		penc, err := rec.Encode()
		if err != nil {
			return nil, err
		}
		fix.annotations[api.AnnotationPlacement] = penc
		fix.rewritten = true
	}
	return fix, nil
}

// plan computes the annotation fixes from one snapshot. Called with mu held.
//
// Every completely allocated pod gets a placement and an allocation equal
// to what kubelet gave it: a placement that disagrees (kubelet swapped
// interchangeable pods, or someone edited or forged it) is restored to the
// truth. When x took the share of a pod y that kubelet has not started
// (the identical-twin swap), y's placement takes x's old share in the same
// pass, right after x's, so that no two placements name one share and no
// share looks free.
func (b *Broker) plan(s *snapshot, now time.Time) ([]podFix, map[types.UID]bool, error) {
	states, live := b.podStates(s)
	if s.prErr != nil {
		return nil, live, fmt.Errorf("reconcile needs kubelet pod-resources: %w", s.prErr)
	}
	var fixes []podFix
	swapped := map[*podState]bool{}
	for _, x := range states {
		if x.actual == nil {
			continue
		}
		fix, err := b.fixFor(x, x.actual, now)
		if err != nil {
			return nil, live, err
		}
		if fix == nil {
			continue
		}
		var yfix *podFix
		if fix.rewritten {
			if y := swapPartner(states, x); y != nil && !swapped[y] {
				moved := make([]api.ContainerPlacement, len(x.placement.Containers))
				for i, c := range x.placement.Containers {
					moved[i] = api.ContainerPlacement{Name: y.placement.Containers[i].Name, Init: c.Init, Devices: slices.Clone(c.Devices)}
				}
				if yfix, err = b.fixFor(y, moved, now); err != nil {
					return nil, live, err
				}
				if yfix != nil {
					swapped[y] = true
					fix.partner, yfix.partner = y.pod.Name, x.pod.Name
				}
			}
		}
		fixes = append(fixes, *fix)
		if yfix != nil {
			fixes = append(fixes, *yfix)
		}
	}
	return fixes, live, nil
}

// Reconcile makes every completely allocated pod's annotations say what
// kubelet actually gave it (per kubelet's pod-resources API), swapping the
// placement of a twin whose share kubelet gave away (see plan). It also
// forgets the records of pods that are gone. API calls are made without
// holding the broker's lock.
func (b *Broker) Reconcile(ctx context.Context, patcher PodPatcher, now time.Time) error {
	logger := klog.FromContext(ctx)
	b.mu.Lock()
	s, err := b.snapshot(ctx)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	b.fixLedger(ctx, s)
	fixes, live, err := b.plan(s, now)
	running := runningContainers(s)
	b.mu.Unlock()
	b.forget(live)
	if err != nil {
		return err
	}
	if r, ok := b.iso.(device.PodReleaser); ok {
		pods := make(map[string]bool, len(live))
		for uid := range live {
			pods[string(uid)] = true
		}
		r.ReleasePods(ctx, pods)
	}
	if l, ok := b.iso.(device.ContainerLimiter); ok {
		l.LimitContainers(ctx, running)
	}
	var errs []error
	for _, f := range fixes {
		if err := patcher.PatchPodAnnotations(ctx, f.namespace, f.name, f.uid, f.annotations); err != nil {
			errs = append(errs, fmt.Errorf("record allocation of pod %s/%s: %w", f.namespace, f.name, err))
			continue
		}
		logger.Info("Recorded allocation", "pod", klog.KRef(f.namespace, f.name), "placementRewritten", f.rewritten, "swappedWith", f.partner)
	}
	return errors.Join(errs...)
}

// runningContainers lists the containers of s whose status names a
// container ID and that have not terminated: those whose cgroup the
// runtime has made. A container without an ID yet is in a later call.
func runningContainers(s *snapshot) []device.RunningContainer {
	var out []device.RunningContainer
	for _, c := range s.cands {
		id := containerID(c.pod, c.key.Container, c.key.Init)
		if id == "" {
			continue
		}
		out = append(out, device.RunningContainer{
			ContainerRef: device.ContainerRef{PodUID: string(c.key.UID), Container: c.key.Container},
			QOSClass:     string(c.pod.Status.QOSClass),
			ContainerID:  id,
		})
	}
	return out
}

// containerID is the ID in the status of container name of p ("" while it
// has none, or once it has terminated).
func containerID(p *corev1.Pod, name string, init bool) string {
	statuses := p.Status.ContainerStatuses
	if init {
		statuses = p.Status.InitContainerStatuses
	}
	for _, st := range statuses {
		if st.Name == name && st.State.Terminated == nil {
			return st.ContainerID
		}
	}
	return ""
}
