package api

import (
	"errors"
	"fmt"
)

// ErrInconsistent marks a placement that disagrees with its pod's own
// request: such a placement is never charged.
var ErrInconsistent = errors.New("placement is inconsistent with the pod")

// ConsistentWith checks a placement against the pod it is on: node is the
// pod's spec.nodeName and r its request (ParsePodRequest). The placement
// must be on that node and list exactly the containers that ask for GPUs
// (by name and init flag), each on as many distinct GPUs as it asks with
// exactly its per-GPU share (the request split evenly, one slot) on each.
// A pod that asks for no GPU is consistent only with an empty placement, so
// a forged placement on a CPU-only pod charges nothing. Whether the GPUs
// exist on the node is the caller's check. Errors wrap ErrInconsistent.
func (p *Placement) ConsistentWith(r *PodRequest, node string) error {
	if p.Node != node {
		return fmt.Errorf("%w: placement is for node %q, the pod is on %q", ErrInconsistent, p.Node, node)
	}
	want := 0
	for _, c := range r.Containers {
		if c.HasGPU() {
			want++
		}
	}
	if len(p.Containers) != want {
		return fmt.Errorf("%w: placement lists %d containers, the pod has %d asking for GPUs", ErrInconsistent, len(p.Containers), want)
	}
	for _, c := range p.Containers {
		kind := "container"
		if c.Init {
			kind = "init container"
		}
		cr := r.Container(c.Name, c.Init)
		if cr == nil || !cr.HasGPU() {
			return fmt.Errorf("%w: %s %q asks for no GPU", ErrInconsistent, kind, c.Name)
		}
		if len(c.Devices) != cr.GPUs() {
			return fmt.Errorf("%w: %s %q is on %d GPUs, it asks for %d", ErrInconsistent, kind, c.Name, len(c.Devices), cr.GPUs())
		}
		per := cr.PerGPU()
		for _, d := range c.Devices {
			if d.Units() != per {
				return fmt.Errorf("%w: %s %q holds %+v on GPU %s, it asks for %+v per GPU", ErrInconsistent, kind, c.Name, d.Units(), d.UUID, per)
			}
		}
	}
	return nil
}
