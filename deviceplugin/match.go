package deviceplugin

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The matcher resolves one identity-less kubelet call (Allocate or
// GetPreferredAllocation of kind k, with devices d) to the container it is
// for. It is pure: it reads only a snapshot.
//
// What kubelet guarantees, and the matcher relies on:
//   - kubelet knows a pod (lists it in pod-resources) before it admits it,
//     and admits one pod at a time;
//   - it allocates a pod's containers in order, init containers (sidecars
//     included) first, then app containers, and finishes one container's
//     resources before the next container's.
//
// A container is eligible for the call when all of these hold:
//  1. its pod is listed by pod-resources (when pod-resources answered): a
//     placed pod that kubelet does not know yet cannot be the one admitted;
//  2. it is its pod's current container: every container before it is
//     complete (has all its devices, or is a finished init container);
//  3. it asks for kind k and has no k devices yet;
//  4. it has a usable placement (see podCandidates);
//  5. d fits its request: as many GPUs as it asks, the per-GPU share of k
//     on each, on the GPUs it already holds other kinds on.
//
// The bypass rule: when a pending pod (rule 1 and 2 hold, the current
// container asks for k and has no k devices) has no usable placement, the
// call may be for it, so the call is refused whatever else would fit. A pod
// that bypassed the extender (spec.nodeName preset, or a placement that is
// not its own) is thus refused at its first call and never takes a placed
// pod's devices; the refusal is transient for placed pods, because kubelet
// rejects the bypassing pod, which leaves pod-resources. When pod-resources
// did not answer, rule 1 cannot be checked and every pod on the node counts
// (fail closed).
//
// Among eligible containers the call goes to the first in this order:
//  1. a container kubelet is already allocating (it holds devices of
//     another kind), since kubelet finishes a container before the next;
//  2. a container whose placement names exactly d (its GPUs, its shares);
//  3. the earlier placement (AssignedAt), then the older pod, then
//     namespace, pod name and container order, so that interchangeable
//     pods are served in the order the extender placed them.
//
// A call that fits no eligible container is refused; so is a call that
// does not fit the container kubelet is already allocating.

// refusal is a refused call that is known to be a given pod's: the event
// about it is recorded on that pod.
type refusal struct {
	pod *corev1.Pod
	err error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// currentContainers marks, per pod, the candidate kubelet allocates next:
// the first in allocation order that is not complete.
func (s *snapshot) currentContainers() map[*candidate]bool {
	cur := map[*candidate]bool{}
	seen := map[string]bool{}
	for _, c := range s.cands {
		pod := string(c.key.UID)
		if seen[pod] || c.complete() {
			continue
		}
		seen[pod] = true
		cur[c] = true
	}
	return cur
}

// pending reports whether c's pod may be the pod kubelet is admitting and c
// the container it allocates next (rules 1 and 2).
func (s *snapshot) pending(c *candidate, cur map[*candidate]bool) bool {
	if s.listed != nil && !s.listed[c.key.Namespace+"/"+c.key.Pod] {
		return false
	}
	return cur[c]
}

// waitingFor reports whether c asks for kind k and has none yet (rule 3).
func (c *candidate) waitingFor(k Kind) bool {
	return c.req[k] > 0 && len(c.have[k]) == 0 && !c.done
}

// fits reports whether devices d of kind k can be container c's (rules 4
// and 5, and 3).
func (c *candidate) fits(k Kind, d dist) bool {
	if c.cp == nil || !c.waitingFor(k) || len(d) != c.gpus {
		return false
	}
	total := int64(0)
	for _, ids := range d {
		if int64(len(ids)) != c.req[k]/int64(c.gpus) {
			return false
		}
		total += int64(len(ids))
	}
	if total != c.req[k] {
		return false
	}
	if hg := c.haveGPUs(); hg != nil && !slices.Equal(hg, d.gpus()) {
		return false
	}
	return true
}

// exact reports whether d is on the placement's GPUs with its shares.
func (c *candidate) exact(k Kind, d dist) bool {
	if c.cp == nil || len(c.cp.Devices) != len(d) {
		return false
	}
	for _, dev := range c.cp.Devices {
		if int64(len(d[dev.UUID])) != shareOf(dev, k) {
			return false
		}
	}
	return true
}

// rank orders two eligible candidates (the ranking order above); exactA
// and exactB are their second criterion.
func rank(a, b *candidate, exactA, exactB bool) int {
	if a.inProgress() != b.inProgress() {
		if a.inProgress() {
			return -1
		}
		return 1
	}
	if exactA != exactB {
		if exactA {
			return -1
		}
		return 1
	}
	return cmp.Or(
		a.placement.AssignedAt.Compare(b.placement.AssignedAt),
		a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time),
		cmp.Compare(a.key.Namespace, b.key.Namespace),
		cmp.Compare(a.key.Pod, b.key.Pod),
		cmp.Compare(a.order, b.order),
	)
}

// eligible returns the containers a call of kind k may be for (rules 1-4,
// not 5) and, when the bypass rule applies, the error that refuses it.
func (s *snapshot) eligible(k Kind) ([]*candidate, error) {
	cur := s.currentContainers()
	var out []*candidate
	for _, c := range s.cands {
		if !s.pending(c, cur) || !c.waitingFor(k) {
			continue
		}
		if c.cp == nil {
			return nil, &refusal{pod: c.pod, err: fmt.Errorf("gpuslice: refusing %s on node %s: %s requests %s=%d but %s; kubelet may be admitting it, and it must not take a placed pod's share",
				k.Resource(), s.node, c.key, k.Resource(), c.req[k], c.noPlacement)}
		}
		out = append(out, c)
	}
	return out, nil
}

// match picks the container a call of kind k with devices d is for.
func (s *snapshot) match(k Kind, d dist) (*candidate, error) {
	cands, err := s.eligible(k)
	if err != nil {
		return nil, err
	}
	var best *candidate
	bestExact := false
	var progress *candidate
	for _, c := range cands {
		if c.inProgress() && progress == nil {
			progress = c
		}
		if !c.fits(k, d) {
			continue
		}
		ex := c.exact(k, d)
		if best == nil || rank(c, best, ex, bestExact) < 0 {
			best, bestExact = c, ex
		}
	}
	if progress != nil && (best == nil || !best.inProgress()) {
		return nil, &refusal{pod: progress.pod, err: fmt.Errorf("gpuslice: %s is being allocated but kubelet offered %s devices on %v that do not match its request (%s=%d over %d GPUs, already on %v)",
			progress.key, k.Resource(), d.gpus(), k.Resource(), progress.req[k], progress.gpus, progress.haveGPUs())}
	}
	if best == nil {
		var gpus []string
		for _, u := range d.gpus() {
			gpus = append(gpus, fmt.Sprintf("%s x%d", u, len(d[u])))
		}
		return nil, s.noCandidate(k, fmt.Sprintf("on GPUs [%s]", strings.Join(gpus, ", ")))
	}
	return best, nil
}

// noCandidate explains why nothing matched.
func (s *snapshot) noCandidate(k Kind, what string) error {
	var hints []string
	for _, c := range s.cands {
		if !c.waitingFor(k) {
			continue
		}
		switch {
		case c.cp == nil:
			hints = append(hints, fmt.Sprintf("%s requests %s=%d but %s", c.key, k.Resource(), c.req[k], c.noPlacement))
		case s.listed != nil && !s.listed[c.key.Namespace+"/"+c.key.Pod]:
			hints = append(hints, fmt.Sprintf("%s is placed but kubelet does not list its pod yet", c.key))
		}
		if len(hints) == 3 {
			break
		}
	}
	msg := fmt.Sprintf("gpuslice: no container on node %s with a gpuslice placement is waiting for %s %s", s.node, k.Resource(), what)
	if len(hints) > 0 {
		msg += "; " + strings.Join(hints, "; ")
	}
	if s.prErr != nil {
		msg += fmt.Sprintf("; kubelet pod-resources unavailable: %v", s.prErr)
	}
	return fmt.Errorf("%s", msg)
}
