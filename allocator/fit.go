package allocator

import (
	"sort"

	"github.com/gpuslice/gpuslice/api"
)

// maxCombinations bounds the exhaustive search over GPU sets for one
// multi-GPU container; larger searches fall back to a seeded greedy search.
const maxCombinations = 512

// topoWeight makes the topology rank dominate the policy's node score.
const topoWeight = 1000

// Fit decides whether the pod fits node n and, if it does, which GPUs each
// container gets, using policy p for the choices. On failure the status
// tells whether the pod would fit the node's capacity (Unschedulable: a
// preemption could help) or not (UnschedulableAndUnresolvable). Fit does not
// modify n.
func Fit(n *Node, r *PodRequest, p Policy) (*Assignment, *Status) {
	return new(Fitter).Fit(n, r, p)
}

// Fit is the package-level Fit with the Fitter's buffers: the assignment it
// returns is valid until the Fitter's next call.
func (f *Fitter) Fit(n *Node, r *PodRequest, p Policy) (*Assignment, *Status) {
	if len(n.Devices) == 0 {
		return nil, &Status{Code: UnschedulableAndUnresolvable, Reason: ReasonNoGPUs}
	}
	if n.CPUCapacity > 0 && r.CPUMilli > 0 {
		if r.CPUMilli > n.CPUCapacity {
			return nil, &Status{Code: UnschedulableAndUnresolvable, Reason: ReasonInsufficientCPU}
		}
		if r.CPUMilli > n.CPUCapacity-n.CPUUsed {
			return nil, &Status{Code: Unschedulable, Reason: ReasonInsufficientCPU}
		}
	}
	if st := n.spanStatus(r); st != nil {
		return nil, st
	}
	v := &f.views[0]
	*v = NodeView{Node: n, podCPU: r.CPUMilli}
	a, st := f.place(v, r, p)
	if st == nil {
		return a, nil
	}
	empty := &f.views[1]
	*empty = NodeView{Node: n, empty: true, podCPU: r.CPUMilli}
	if _, st2 := f.place(empty, r, p); st2 != nil {
		st2.Code = UnschedulableAndUnresolvable
		return nil, st2
	}
	st.Code = Unschedulable
	return nil, st
}

// NodeScore is the score of an assignment on a node, comparable across
// nodes for the same pod: the topology rank of its multi-GPU containers
// first, then the policy's node score.
func NodeScore(p Policy, n *Node, a *Assignment) float64 {
	return new(Fitter).NodeScore(p, n, a)
}

// NodeScore is the package-level NodeScore without allocating.
func (f *Fitter) NodeScore(p Policy, n *Node, a *Assignment) float64 {
	v := &f.views[3]
	*v = NodeView{Node: n, podCPU: a.CPUMilli}
	return float64(a.TopoRank)*topoWeight + p.ScoreNode(v, a)
}

// place runs the placement on a view; the status code is left for Fit.
//
// App containers and sidecars run together for the pod's whole life, so
// they are placed first, largest first, each on the room the others left.
// Regular init containers run one at a time before the app containers,
// beside the sidecars started before them: each is placed on the pod's base
// state less those sidecars, preferably where the pod's holding already
// covers it. The charges follow api.PodCharge.
func (f *Fitter) place(v *NodeView, r *PodRequest, p Policy) (*Assignment, *Status) {
	order := f.order[:0]
	if cap(f.slot) < len(r.Containers) {
		f.slot = make([]int, len(r.Containers))
	}
	slot := f.slot[:len(r.Containers)]
	nInit, nGPU, nSidecar := 0, 0, 0
	for i, c := range r.Containers {
		slot[i] = -1
		if !c.HasGPU() {
			continue
		}
		slot[i] = nGPU
		nGPU++
		switch {
		case c.Sidecar:
			nSidecar++
		case c.Init:
			nInit++
			continue
		}
		order = append(order, i)
	}
	if len(order) > 1 {
		// Largest containers first: they have the fewest choices.
		sort.SliceStable(order, func(x, y int) bool {
			a, b := r.Containers[order[x]], r.Containers[order[y]]
			if a.GPUs() != b.GPUs() {
				return a.GPUs() > b.GPUs()
			}
			pa, pb := a.PerGPU(), b.PerGPU()
			if pa.Slices != pb.Slices {
				return pa.Slices > pb.Slices
			}
			return pa.Core > pb.Core
		})
	}
	f.reset(len(v.Node.Devices))
	if cap(f.containers) < nGPU {
		f.containers = make([]ContainerAssignment, nGPU)
	}
	a := &f.a
	// Containers are reported in pod spec order: slot[i] is container i's
	// place among the GPU containers.
	*a = Assignment{Node: v.Node.Name, TopoRank: MaxTopoRank, CPUMilli: r.CPUMilli, Containers: f.containers[:nGPU]}
	base := &f.views[2]
	*base = NodeView{Node: v.Node, empty: v.empty, podCPU: v.podCPU}
	if len(order) > 1 || nInit > 0 {
		v.extra = f.extra
	}
	for k, ci := range order {
		c := r.Containers[ci]
		devs, rank, st := f.choose(v, r, c, p, nil)
		if st != nil {
			return nil, st
		}
		a.TopoRank = min(a.TopoRank, rank)
		d := c.PerGPU()
		if k < len(order)-1 || nInit > 0 {
			for _, i := range devs {
				v.take(i, d)
			}
		}
		a.Containers[slot[ci]] = ContainerAssignment{Name: c.Name, Init: c.Init, Sidecar: c.Sidecar, Devices: devs, PerGPU: d}
	}
	if nInit > 0 {
		if nSidecar > 0 {
			base.extra = f.side
		}
		for ci, c := range r.Containers {
			if !c.HasGPU() || !c.Init {
				continue
			}
			if c.Sidecar {
				// Every init container after it runs beside it.
				for _, i := range a.Containers[slot[ci]].Devices {
					base.take(i, c.PerGPU())
				}
				continue
			}
			devs, rank, st := f.choose(base, r, c, p, v.extra)
			if st != nil {
				return nil, st
			}
			a.TopoRank = min(a.TopoRank, rank)
			a.Containers[slot[ci]] = ContainerAssignment{Name: c.Name, Init: true, Devices: devs, PerGPU: c.PerGPU()}
		}
	}
	f.order = order[:0]
	a.Charges = f.chargesInto(v.Node, a.Containers)
	return a, nil
}

// choose picks the devices for one container. cover, when set, holds units
// the pod already holds per device; devices whose holding covers the demand
// are preferred (used for init containers).
func (f *Fitter) choose(v *NodeView, r *PodRequest, c ContainerRequest, p Policy, cover []Units) ([]int, int, *Status) {
	d, k := c.PerGPU(), c.GPUs()
	var candBuf [16]int
	cand := candBuf[:0]
	var n checked
	for i := range v.Node.Devices {
		dev := &v.Node.Devices[i]
		if !dev.Healthy {
			n.unhealthy++
			continue
		}
		if !r.ModelAllowed(dev.Model) {
			n.wrongModel++
			continue
		}
		if !api.IsolationAllowed(r.Sandbox, dev.Isolation) {
			n.isolation++
			continue
		}
		if !r.EnforcementAllowed(dev.Enforcement) {
			n.weak++
			continue
		}
		n.eligible++
		if !dev.FitsInstance(d) {
			n.instance = n.instance.Max(dev.Instance)
			continue
		}
		n.fitsInstance++
		f, u := v.Free(i), dev.Charge(d)
		n.charge = n.charge.Max(u)
		if u.Slices > f.Slices {
			continue
		}
		n.mem++
		if u.Core > f.Core {
			continue
		}
		n.core++
		if u.Slots > f.Slots {
			continue
		}
		n.slot++
		cand = append(cand, i)
	}
	if len(cand) < k {
		return nil, 0, failure(c, d, k, &n, r)
	}
	islands := v.Node.Link != nil && wholeGPU(v, cand, d)
	if k == 1 {
		one := [1]int{cand[0]}
		best, bestScore, bestBroken := cand[0], deviceScore(v, p, cand[0], d, cover), 0
		if islands {
			bestBroken = brokenLinks(v, one[:])
		}
		for _, i := range cand[1:] {
			s := deviceScore(v, p, i, d, cover)
			if islands {
				one[0] = i
				b := brokenLinks(v, one[:])
				if b != bestBroken {
					if b < bestBroken {
						best, bestScore, bestBroken = i, s, b
					}
					continue
				}
			}
			if s > bestScore {
				best, bestScore = i, s
			}
		}
		start := len(f.devs)
		f.devs = append(f.devs, best)
		return f.devs[start:len(f.devs):len(f.devs)], MaxTopoRank, nil
	}
	score := func(i int) float64 { return deviceScore(v, p, i, d, cover) }
	set := chooseSet(v, cand, k, d, p, score, islands)
	return set, setRank(v.Node, set), nil
}

// deviceScore is the policy's device score of the share's charge on the
// device, raised above every other device when cover (the pod's own
// holding) already covers that charge.
func deviceScore(v *NodeView, p Policy, i int, d Units, cover []Units) float64 {
	u := v.Node.Devices[i].Charge(d)
	s := p.ScoreDevice(v, i, u)
	if cover != nil && u.Fits(cover[i]) {
		s += topoWeight
	}
	return s
}

// checked counts how far a node's GPUs got through the checks of choose,
// in their order: health, model, isolation mode, enforcement, then (on the
// eligible GPUs) whether the share fits one instance, then capacity for
// the share's charge.
type checked struct {
	unhealthy, wrongModel, isolation, weak, eligible int
	fitsInstance, mem, core, slot                    int
	// instance is the largest instance among the eligible GPUs whose
	// instance the share does not fit; charge the largest charge of the
	// share on the GPUs whose instance it fits.
	instance, charge Units
}

// capacityReason names the first capacity check, in the order choose
// applies them, that fewer than k eligible GPUs passed: its own reason when
// none passed, ReasonNotEnoughGPUs when some did.
func (n *checked) capacityReason(k int) Reason {
	for _, c := range [...]struct {
		passed int
		none   Reason
	}{
		{n.fitsInstance, ReasonLargerThanInstance},
		{n.mem, ReasonInsufficientMemory},
		{n.core, ReasonInsufficientCore},
		{n.slot, ReasonNoSlots},
	} {
		if c.passed == 0 {
			return c.none
		}
		if c.passed < k {
			return ReasonNotEnoughGPUs
		}
	}
	return ReasonNotEnoughGPUs
}

// failure returns the status of a container that found too few GPUs; the
// counts say how far the GPUs got through the checks, and the reason is the
// first check that left fewer than k GPUs.
func failure(c ContainerRequest, d Units, k int, n *checked, r *PodRequest) *Status {
	st := &Status{Container: c.Name, GPUs: k, PerGPU: d, Eligible: n.eligible, WithSlices: n.mem,
		Unhealthy: n.unhealthy, OtherModel: n.wrongModel, OtherIsolation: n.isolation, WeakEnforcement: n.weak,
		MinEnforcement: r.MinEnforcement, Sandbox: r.Sandbox, Instance: n.instance, Charge: n.charge}
	switch {
	case n.eligible == 0 && n.weak > 0:
		st.Reason = ReasonEnforcementTooWeak
	case n.eligible == 0 && n.isolation > 0 && r.Sandbox == "":
		st.Reason = ReasonSandboxGPUs
	case n.eligible == 0 && n.isolation > 0:
		st.Reason = ReasonNoSandboxGPU
	case n.eligible == 0 && n.wrongModel > 0:
		st.Reason = ReasonModelNotAllowed
	case n.eligible == 0:
		st.Reason = ReasonNoHealthyGPU
	case n.eligible < k && n.eligible+n.unhealthy+n.wrongModel+n.isolation+n.weak >= k:
		// The node has the GPUs, but not enough of them may be used.
		st.Reason = ReasonTooFewEligible
	default:
		st.Reason = n.capacityReason(k)
	}
	return st
}

// setRank returns the weakest link rank inside a set of devices.
func setRank(n *Node, set []int) int {
	if len(set) < 2 {
		return MaxTopoRank
	}
	r := MaxTopoRank
	for x := 0; x < len(set); x++ {
		for y := x + 1; y < len(set); y++ {
			r = min(r, n.LinkRank(set[x], set[y]))
		}
	}
	return r
}

// wholeGPU reports whether the charge of share d takes a whole GPU on the
// candidates.
func wholeGPU(v *NodeView, cand []int, d Units) bool {
	for _, i := range cand {
		if v.Node.Devices[i].Charge(d).Slices < v.Capacity(i).Slices {
			return false
		}
	}
	return len(cand) > 0
}

// isFree reports whether device position i is wholly free in the view.
func isFree(v *NodeView, i int) bool {
	return v.Node.Devices[i].Healthy && v.Free(i) == v.Capacity(i)
}

// brokenLinks counts the NVLink links from the set to wholly free GPUs
// outside it: taking the set cuts them from NVLink islands that a later
// whole-GPU job could use. Fewer is better.
func brokenLinks(v *NodeView, set []int) int {
	nv := int8(MaxTopoRank)
	n := 0
	for u := range v.Node.Devices {
		if v.Node.Link == nil || !isFree(v, u) {
			continue
		}
		in := false
		for _, s := range set {
			if s == u {
				in = true
				break
			}
		}
		if in {
			continue
		}
		for _, s := range set {
			if v.Node.Link[s][u] >= nv {
				n++
			}
		}
	}
	return n
}

// setKey orders candidate sets: weakest link, then the sum of link ranks,
// then (whole-GPU requests on nodes with topology) the fewest NVLink links
// cut from free islands, then the policy score.
type setKey struct {
	minRank, sumRank int
	broken           int
	score            float64
}

func (a setKey) better(b setKey) bool {
	if a.minRank != b.minRank {
		return a.minRank > b.minRank
	}
	if a.sumRank != b.sumRank {
		return a.sumRank > b.sumRank
	}
	if a.broken != b.broken {
		return a.broken < b.broken
	}
	return a.score > b.score
}

func keyOf(v *NodeView, set []int, d Units, p Policy, score func(int) float64, islands bool) setKey {
	k := setKey{minRank: MaxTopoRank}
	for x := 0; x < len(set); x++ {
		for y := x + 1; y < len(set); y++ {
			r := v.Node.LinkRank(set[x], set[y])
			k.minRank = min(k.minRank, r)
			k.sumRank += r
		}
	}
	if islands {
		k.broken = brokenLinks(v, set)
	}
	if ss, ok := p.(SetScorer); ok {
		k.score = ss.ScoreSet(v, set, d)
	} else {
		for _, i := range set {
			k.score += score(i)
		}
	}
	return k
}

// chooseSet picks k of the candidate devices: exhaustively when the number
// of combinations is small, otherwise greedily from every seed.
func chooseSet(v *NodeView, cand []int, k int, d Units, p Policy, score func(int) float64, islands bool) []int {
	if v.Node.Link == nil && !isSetScorer(p) {
		// No topology: the k best devices by score, in index order.
		idx := append([]int(nil), cand...)
		sort.SliceStable(idx, func(x, y int) bool { return score(idx[x]) > score(idx[y]) })
		out := idx[:k]
		sort.Ints(out)
		return out
	}
	if combinations(len(cand), k) <= maxCombinations {
		cur := make([]int, k)
		best := make([]int, k)
		var bestKey setKey
		found := false
		var rec func(start, depth int)
		rec = func(start, depth int) {
			if depth == k {
				key := keyOf(v, cur, d, p, score, islands)
				if !found || key.better(bestKey) {
					found, bestKey = true, key
					copy(best, cur)
				}
				return
			}
			for i := start; i <= len(cand)-(k-depth); i++ {
				cur[depth] = cand[i]
				rec(i+1, depth+1)
			}
		}
		rec(0, 0)
		return best
	}
	var best []int
	var bestKey setKey
	for _, seed := range cand {
		set := []int{seed}
		used := map[int]bool{seed: true}
		for len(set) < k {
			pick, pickKey := -1, setKey{}
			for _, c := range cand {
				if used[c] {
					continue
				}
				key := keyOf(v, append(set, c), d, p, score, islands)
				if pick < 0 || key.better(pickKey) {
					pick, pickKey = c, key
				}
			}
			set = append(set, pick)
			used[pick] = true
		}
		sort.Ints(set)
		if key := keyOf(v, set, d, p, score, islands); best == nil || key.better(bestKey) {
			best, bestKey = set, key
		}
	}
	return best
}

func isSetScorer(p Policy) bool { _, ok := p.(SetScorer); return ok }

// combinations returns n choose k, saturating above maxCombinations.
func combinations(n, k int) int {
	if k > n {
		return 0
	}
	c := 1
	for i := 1; i <= k; i++ {
		c = c * (n - k + i) / i
		if c > maxCombinations {
			return maxCombinations + 1
		}
	}
	return c
}
