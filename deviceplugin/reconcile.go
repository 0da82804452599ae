package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
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
	swapped         bool
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

// plan computes the annotation fixes from one snapshot. Called with mu held.
func (b *Broker) plan(s *snapshot, now time.Time) ([]podFix, map[types.UID]bool, error) {
	live := map[types.UID]bool{}
	byPod := map[types.UID][]*candidate{}
	var uids []types.UID
	for _, c := range s.cands {
		live[c.key.UID] = true
		if _, ok := byPod[c.key.UID]; !ok {
			uids = append(uids, c.key.UID)
		}
		byPod[c.key.UID] = append(byPod[c.key.UID], c)
	}
	if s.prErr != nil {
		return nil, live, fmt.Errorf("reconcile needs kubelet pod-resources: %w", s.prErr)
	}
	var fixes []podFix
	for _, uid := range uids {
		cs := byPod[uid]
		pod, pl := cs[0].pod, cs[0].placement
		if pl == nil {
			continue
		}
		var containers []api.ContainerPlacement
		complete := true
		for _, c := range cs {
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
		if !complete {
			continue
		}
		if old, err := api.ParseAllocation(pod.Annotations[api.AnnotationAllocated]); err == nil && reflect.DeepEqual(old.Containers, containers) {
			continue
		}
		alloc := &api.Allocation{Version: api.AllocationVersion, Node: b.node, AllocatedAt: now.UTC(), Containers: containers}
		enc, err := alloc.Encode()
		if err != nil {
			return nil, live, err
		}
		fix := podFix{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, annotations: map[string]string{api.AnnotationAllocated: enc}}
		if !samePlacement(pl.Containers, containers) {
			np := *pl
			np.Containers = containers
			penc, err := np.Encode()
			if err != nil {
				return nil, live, err
			}
			fix.annotations[api.AnnotationPlacement] = penc
			fix.swapped = true
		}
		fixes = append(fixes, fix)
	}
	return fixes, live, nil
}

// samePlacement compares container placements regardless of order.
func samePlacement(a, b []api.ContainerPlacement) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		i := slices.IndexFunc(b, func(y api.ContainerPlacement) bool { return y.Name == x.Name && y.Init == x.Init })
		if i < 0 || !reflect.DeepEqual(x.Devices, b[i].Devices) {
			return false
		}
	}
	return true
}

// Reconcile makes every completely allocated pod's annotations say what
// kubelet actually gave it (per kubelet's pod-resources API): it writes
// gpuslice.io/allocated and, when kubelet's devices differ from the
// placement, rewrites gpuslice.io/placement (same AssignedAt) so that the
// extender accounts for the real devices. It also forgets the records of
// pods that are gone. API calls are made without holding the broker's lock.
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
	b.mu.Unlock()
	b.forget(live)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range fixes {
		if err := patcher.PatchPodAnnotations(ctx, f.namespace, f.name, f.uid, f.annotations); err != nil {
			errs = append(errs, fmt.Errorf("record allocation of pod %s/%s: %w", f.namespace, f.name, err))
			continue
		}
		logger.Info("Recorded allocation", "pod", klog.KRef(f.namespace, f.name), "placementRewritten", f.swapped)
	}
	return errors.Join(errs...)
}
