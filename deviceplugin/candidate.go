package deviceplugin

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// ContainerKey names one container of one pod.
type ContainerKey struct {
	Namespace, Pod string
	UID            types.UID
	Container      string
	// Init is true for init containers, restartable ones (sidecars)
	// included.
	Init bool
}

func (k ContainerKey) String() string {
	kind := "container"
	if k.Init {
		kind = "init container"
	}
	return fmt.Sprintf("%s %q of pod %s/%s", kind, k.Container, k.Namespace, k.Pod)
}

// candidate is a container that requests gpuslice resources, with what
// kubelet has already given it. Candidates are built by the snapshot and
// only read by the matcher.
type candidate struct {
	key       ContainerKey
	pod       *corev1.Pod
	placement *api.Placement
	// cp is the container's entry of the placement; nil when the pod has no
	// usable placement for it (noPlacement says why).
	cp          *api.ContainerPlacement
	noPlacement string
	// order is the container's position in kubelet's allocation order:
	// init containers (sidecars included) first, then app containers.
	order int
	req   [numKinds]int64
	gpus  int
	// have is what kubelet already gave the container, per kind, sorted.
	have [numKinds][]string
	// done marks a container kubelet has finished with although nothing
	// records its devices (an init container before one that has devices).
	done bool
}

// inProgress reports whether kubelet has given the container any device.
func (c *candidate) inProgress() bool {
	for _, k := range Kinds() {
		if len(c.have[k]) > 0 {
			return true
		}
	}
	return false
}

// complete reports whether kubelet has given the container every device it
// requests (or is done with it).
func (c *candidate) complete() bool {
	if c.done {
		return true
	}
	for _, k := range Kinds() {
		if int64(len(c.have[k])) < c.req[k] {
			return false
		}
	}
	return true
}

// haveGPUs returns the GPUs of the devices kubelet already gave the
// container (any kind), sorted, or nil.
func (c *candidate) haveGPUs() []string {
	set := map[string]bool{}
	for _, k := range Kinds() {
		for _, id := range c.have[k] {
			if u, _, _, err := ParseDeviceID(id); err == nil {
				set[u] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// targetGPUs is where a candidate's next devices should go: the GPUs it
// already has, or its placement's.
func (c *candidate) targetGPUs() []string {
	if hg := c.haveGPUs(); hg != nil {
		return hg
	}
	out := make([]string, 0, len(c.cp.Devices))
	for _, d := range c.cp.Devices {
		out = append(out, d.UUID)
	}
	return out
}

// shareOf is the placement's share of kind k on one GPU.
func shareOf(d api.DeviceShare, k Kind) int64 {
	switch k {
	case KindMem:
		return d.Slices
	case KindCore:
		return d.Core
	}
	return d.Slots
}

// dist is a call's device IDs grouped by GPU UUID.
type dist map[string][]string

func (d dist) gpus() []string { return slices.Sorted(maps.Keys(d)) }

// placementPositions maps the GPU UUIDs of a container's placement to their
// position in it (nil placement: empty map).
func placementPositions(cp *api.ContainerPlacement) map[string]int {
	pos := map[string]int{}
	if cp != nil {
		for i, d := range cp.Devices {
			pos[d.UUID] = i
		}
	}
	return pos
}

// placementOrder orders two GPUs (UUID and NVML index) the way a container
// sees them: the GPUs of its placement first, in placement order, then the
// others by NVML index.
func placementOrder(pos map[string]int, ux string, ix int, uy string, iy int) int {
	px, okx := pos[ux]
	py, oky := pos[uy]
	switch {
	case okx && oky:
		return px - py
	case okx:
		return -1
	case oky:
		return 1
	}
	return ix - iy
}
