package deviceplugin

import (
	"context"
	"fmt"
	"slices"

	"github.com/gpuslice/gpuslice/api"
)

// Instance binding on whole-instance GPUs (vgpu, passthrough): instance j
// of a GPU whose instances are k slices (k = InstanceMiB / SliceMiB) owns
// the gpu-mem device IDs [j*k, (j+1)*k). The binding needs no state of its
// own: which instances are held follows from the IDs that kubelet's
// pod-resources and the ledger say live containers hold, so a restarted
// plugin sees the same. A container's IDs on such a GPU must lie in one
// instance that no other live container holds; that stops a pod that
// bypassed the extender (or any over-commit) from sharing an instance.

// instanceSize returns k, the gpu-mem IDs of one instance of GPU u, and
// the GPU's instance count; k is 0 for GPUs of shared modes.
func (b *Broker) instanceSize(u string) (k, slots int64) {
	g, ok := b.state.GPU(u)
	if !ok || !g.Isolation.WholeInstance() || b.sliceMiB <= 0 {
		return 0, 0
	}
	return g.InstanceMiB / b.sliceMiB, g.Slots
}

// unitOf returns the unit number of a device ID (-1 when it does not parse).
func unitOf(id string) int64 {
	_, _, n, err := ParseDeviceID(id)
	if err != nil {
		return -1
	}
	return n
}

// heldInstances returns the instances of GPU u (of k IDs each) that live
// containers other than c hold: every candidate's gpu-mem IDs, except c's
// own, those of containers kubelet is done with, and those of c's pod's
// (non-sidecar) init containers before it, whose devices kubelet hands on
// to c.
func heldInstances(s *snapshot, c *candidate, u string, k int64) map[int64]*candidate {
	out := map[int64]*candidate{}
	for _, o := range s.cands {
		if o == c || o.done || (c != nil && o.key.UID == c.key.UID && o.key.Init && o.order < c.order && !isSidecar(o)) {
			continue
		}
		for _, id := range o.have[KindMem] {
			if gu, _, n, err := ParseDeviceID(id); err == nil && gu == u {
				out[n/k] = o
			}
		}
	}
	return out
}

// isSidecar reports whether candidate c is a restartable init container.
func isSidecar(c *candidate) bool {
	if !c.key.Init || c.pod == nil {
		return false
	}
	for i := range c.pod.Spec.InitContainers {
		if ic := &c.pod.Spec.InitContainers[i]; ic.Name == c.key.Container {
			return api.IsSidecar(ic)
		}
	}
	return false
}

// checkInstances checks container c's gpu-mem devices d against the
// instance binding and returns the instance it takes on each
// whole-instance GPU.
func (b *Broker) checkInstances(s *snapshot, c *candidate, d dist) (map[string]int, error) {
	out := map[string]int{}
	for _, u := range d.gpus() {
		k, slots := b.instanceSize(u)
		if k <= 0 {
			continue
		}
		j := int64(-1)
		for _, id := range d[u] {
			n := unitOf(id)
			switch {
			case j < 0:
				j = n / k
			case n/k != j:
				return nil, &refusal{pod: c.pod, err: fmt.Errorf("gpuslice: %s: gpu-mem devices on GPU %s span instances %d and %d; on a whole-instance GPU a container's devices must lie in one instance (IDs %d..%d of %d-slice instances)",
					c.key, u, j, n/k, j*k, (j+1)*k-1, k)}
			}
		}
		if j >= slots {
			return nil, &refusal{pod: c.pod, err: fmt.Errorf("gpuslice: %s: GPU %s has %d instances, not instance %d", c.key, u, slots, j)}
		}
		if o := heldInstances(s, c, u, k)[j]; o != nil {
			return nil, &refusal{pod: c.pod, err: fmt.Errorf("gpuslice: %s: instance %d of GPU %s is held by %s; a whole-instance GPU gives each container an instance of its own (did the pod bypass the gpuslice scheduler extender?)",
				c.key, j, u, o.key)}
		}
		out[u] = int(j)
	}
	return out, nil
}

// pickInstance returns per gpu-mem IDs of GPU u for container c inside one
// free instance: the instance of the IDs c must keep (have) when there are
// any, else the first instance no other container holds with enough of
// avail (sorted). It returns nil when no instance fits.
func (b *Broker) pickInstance(s *snapshot, c *candidate, u string, avail, have []string, per int, k, slots int64) []string {
	held := heldInstances(s, c, u, k)
	try := func(j int64) []string {
		if j < 0 || j >= slots || held[j] != nil || int64(per) > k {
			return nil
		}
		out := slices.Clone(have)
		for _, id := range have {
			if unitOf(id)/k != j {
				return nil
			}
		}
		for _, id := range avail {
			if len(out) >= per {
				break
			}
			if unitOf(id)/k == j && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		if len(out) < per {
			return nil
		}
		return out
	}
	if len(have) > 0 {
		return try(unitOf(have[0]) / k)
	}
	for j := range slots {
		if ids := try(j); ids != nil {
			return ids
		}
	}
	return nil
}

// HeldGPUs returns the GPUs (UUIDs) on which kubelet's pod-resources lists
// gpuslice devices of any container: the GPUs whose instances an isolation
// mode must not remove. An error means pod-resources did not answer; the
// caller should then treat every GPU as held.
func HeldGPUs(ctx context.Context, pr PodResources) (map[string]bool, error) {
	if pr == nil {
		return nil, fmt.Errorf("no pod-resources client")
	}
	prs, err := pr.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pod resources: %w", err)
	}
	out := map[string]bool{}
	for _, p := range prs {
		for _, c := range p.GetContainers() {
			for _, d := range c.GetDevices() {
				if _, ok := KindOf(d.GetResourceName()); !ok {
					continue
				}
				for _, id := range d.GetDeviceIds() {
					if u, _, _, err := ParseDeviceID(id); err == nil {
						out[u] = true
					}
				}
			}
		}
	}
	return out, nil
}
