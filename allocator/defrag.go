package allocator

import (
	"cmp"
	"fmt"
	"slices"
)

// DefragPod is a placed pod the defragmentation advisor may move.
type DefragPod struct {
	// Name identifies the pod in the plan ("namespace/name").
	Name string
	// Node is the name of the node the pod is on.
	Node string
	// Request is the pod's GPU request; a move re-fits it at the
	// destination with Fit. A nil request pins the pod.
	Request *PodRequest
	// Charges are what the pod holds on its node (Assignment.Charges:
	// device positions in that node's Devices). They must be part of the
	// node's usage.
	Charges []Charge
	// Pinned pods are never moved, so the GPUs they hold are never freed.
	Pinned bool
}

// DefragOptions configures the advisor.
type DefragOptions struct {
	// Policy fits the pods at their destinations and measures
	// fragmentation (Fragmentation); nil is Binpack.
	Policy Policy
	// MaxMoves bounds the number of pods the plan moves; 0 or less is no
	// bound.
	MaxMoves int
	// Allowed, when set, says whether the pod may go to the node at all
	// (what the allocator does not see: a cordon, taints, node selectors).
	// The pod's own node is offered too.
	Allowed func(pod *DefragPod, node *Node) bool
}

// GPURef names one GPU: its node and its index (Device.Index).
type GPURef struct {
	Node string `json:"node"`
	GPU  int    `json:"gpu"`
}

// DefragMove is one pod moved by a plan.
type DefragMove struct {
	// Step numbers the group of moves that frees one GPU (from 1); the
	// moves of a step are applied in order, after those of earlier steps.
	Step int    `json:"step"`
	Pod  string `json:"pod"`
	// FromGPUs and ToGPUs are GPU indices (Device.Index) on FromNode and
	// ToNode.
	FromNode string `json:"fromNode"`
	FromGPUs []int  `json:"fromGPUs"`
	ToNode   string `json:"toNode"`
	ToGPUs   []int  `json:"toGPUs"`
	// Slices is the gpu-mem the pod holds, summed over its GPUs.
	Slices int64 `json:"slices"`
}

// DefragPlan is the advisor's dry-run plan: the moves, in order, and what
// the cluster looks like before and after them.
type DefragPlan struct {
	// Policy fitted the moves and measured the fragmentation.
	Policy string       `json:"policy"`
	Moves  []DefragMove `json:"moves"`
	// Freed lists the GPUs the plan leaves wholly free, by step.
	Freed []GPURef `json:"freed"`
	// FreedGPUs is FreeWholeGPUsAfter - FreeWholeGPUsBefore.
	FreedGPUs   int   `json:"freedGPUs"`
	MovedPods   int   `json:"movedPods"`
	MovedSlices int64 `json:"movedSlices"`
	// FreeWholeGPUs counts the healthy GPUs nothing is held on.
	FreeWholeGPUsBefore int `json:"freeWholeGPUsBefore"`
	FreeWholeGPUsAfter  int `json:"freeWholeGPUsAfter"`
	// Fragmentation is the policy's measure (Fragmentation) summed over
	// the nodes, in GPUs.
	FragmentationBefore float64 `json:"fragmentationBefore"`
	FragmentationAfter  float64 `json:"fragmentationAfter"`
}

// Defrag computes a dry-run defragmentation plan: moves of placed pods
// after which more GPUs are wholly free. It changes neither nodes nor pods.
//
// The plan is greedy, one GPU at a time. The candidates are the healthy,
// partly used GPUs, ordered by the pods that must move to free them (fewest
// first: whole GPUs freed per pod moved), then the slices held (least
// first), then their node's fragmentation (most first), then node and GPU
// order. For each candidate, on the state the earlier steps left, each pod
// on it (largest first) is re-fitted with Fit on every allowed node with
// the candidate GPU taken out, and goes to the fit that least increases
// the destination node's fragmentation (as FGD places pods), then the best
// NodeScore, then the first node. A move never lands on a wholly free GPU
// (that would spend the GPU it means to free), and a pod moves at most
// once. The step is kept only when every pod on the candidate found a
// destination and the count of wholly free GPUs rose; otherwise it is
// undone. A GPU that holds a pinned pod, or usage no given pod accounts
// for, is never a candidate. Every move is a Fit on the state the earlier
// moves left, so the plan never over-commits a GPU (nor a node's CPU when
// the node tracks it).
//
// Greedy, not optimal: a step that frees one GPU may use room a later,
// cheaper step needed.
func Defrag(nodes []*Node, pods []DefragPod, o DefragOptions) (*DefragPlan, error) {
	d, err := newDefragger(nodes, pods, o)
	if err != nil {
		return nil, err
	}
	plan := &DefragPlan{Policy: d.policy.Name(), Moves: []DefragMove{}, Freed: []GPURef{},
		FreeWholeGPUsBefore: d.freeWhole(), FragmentationBefore: d.fragmentation()}
	for _, c := range d.candidates() {
		if o.MaxMoves > 0 && plan.MovedPods >= o.MaxMoves {
			break
		}
		moves, freed, err := d.step(c, o.MaxMoves-plan.MovedPods)
		if err != nil {
			return nil, err
		}
		if len(freed) == 0 {
			continue
		}
		step := len(plan.Freed) + 1
		for i := range moves {
			moves[i].Step = step
			plan.MovedSlices += moves[i].Slices
		}
		plan.Moves = append(plan.Moves, moves...)
		plan.MovedPods += len(moves)
		plan.Freed = append(plan.Freed, freed...)
	}
	plan.FreeWholeGPUsAfter = d.freeWhole()
	plan.FreedGPUs = plan.FreeWholeGPUsAfter - plan.FreeWholeGPUsBefore
	plan.FragmentationAfter = d.fragmentation()
	for _, n := range d.nodes {
		if err := defragOvercommitted(n); err != nil {
			return nil, fmt.Errorf("defrag plan is invalid: %w", err)
		}
	}
	return plan, nil
}

// defragger is the advisor's working copy of the cluster.
type defragger struct {
	policy  Policy
	allowed func(*DefragPod, *Node) bool
	nodes   []*Node
	pods    []DefragPod
	podNode []int  // node position of each pod
	moved   []bool // pods moved by the plan
	fitter  Fitter
}

func newDefragger(nodes []*Node, pods []DefragPod, o DefragOptions) (*defragger, error) {
	d := &defragger{policy: o.Policy, allowed: o.Allowed, nodes: make([]*Node, len(nodes)),
		pods: make([]DefragPod, len(pods)), podNode: make([]int, len(pods)), moved: make([]bool, len(pods))}
	if d.policy == nil {
		d.policy = Binpack{}
	}
	byName := make(map[string]int, len(nodes))
	for i, n := range nodes {
		// Own copies of the usage and of the devices: a step takes its
		// candidate GPU out by marking it unhealthy.
		c := n.Clone()
		c.Devices = slices.Clone(n.Devices)
		d.nodes[i] = c
		if _, dup := byName[n.Name]; dup {
			return nil, fmt.Errorf("defrag: node %s is listed twice", n.Name)
		}
		byName[n.Name] = i
	}
	rest := make([][]Units, len(nodes))
	for i, n := range d.nodes {
		rest[i] = slices.Clone(n.Used)
	}
	for i, p := range pods {
		ni, ok := byName[p.Node]
		if !ok {
			return nil, fmt.Errorf("defrag: pod %s is on node %s, which is not listed", p.Name, p.Node)
		}
		for _, c := range p.Charges {
			if c.Device < 0 || c.Device >= len(d.nodes[ni].Devices) {
				return nil, fmt.Errorf("defrag: pod %s charges device position %d, node %s has %d", p.Name, c.Device, p.Node, len(d.nodes[ni].Devices))
			}
			rest[ni][c.Device] = rest[ni][c.Device].Sub(c.Units)
			if rest[ni][c.Device].AnyNegative() {
				return nil, fmt.Errorf("defrag: the pods' charges on node %s gpu %d exceed its usage %+v", p.Node, d.nodes[ni].Devices[c.Device].Index, d.nodes[ni].Used[c.Device])
			}
		}
		p.Charges = slices.Clone(p.Charges)
		d.pods[i], d.podNode[i] = p, ni
	}
	return d, nil
}

// wholeFree reports whether device position i is a healthy GPU nothing is
// held on.
func wholeFree(n *Node, i int) bool {
	dev := &n.Devices[i]
	return dev.Healthy && !dev.Placeholder && dev.Capacity.Slices > 0 && n.Used[i].IsZero()
}

func countWholeFree(n *Node) int {
	k := 0
	for i := range n.Devices {
		if wholeFree(n, i) {
			k++
		}
	}
	return k
}

func (d *defragger) freeWhole() int {
	k := 0
	for _, n := range d.nodes {
		k += countWholeFree(n)
	}
	return k
}

func (d *defragger) fragmentation() float64 {
	var f float64
	for _, n := range d.nodes {
		f += Fragmentation(d.policy, n)
	}
	return f
}

// defragCandidate is a GPU the advisor tries to free.
type defragCandidate struct {
	node, dev int
	pods      int
	slices    int64
	frag      float64
}

// candidates returns the partly used healthy GPUs in the order the plan
// tries them.
func (d *defragger) candidates() []defragCandidate {
	pods := make(map[[2]int]int)
	for i, p := range d.pods {
		for _, c := range p.Charges {
			pods[[2]int{d.podNode[i], c.Device}]++
		}
	}
	var out []defragCandidate
	for ni, n := range d.nodes {
		frag := -1.0
		for i := range n.Devices {
			dev := &n.Devices[i]
			k := pods[[2]int{ni, i}]
			if !dev.Healthy || dev.Placeholder || n.Used[i].IsZero() || k == 0 {
				continue
			}
			if frag < 0 {
				frag = Fragmentation(d.policy, n)
			}
			out = append(out, defragCandidate{node: ni, dev: i, pods: k, slices: n.Used[i].Slices, frag: frag})
		}
	}
	slices.SortStableFunc(out, func(a, b defragCandidate) int {
		return cmp.Or(cmp.Compare(a.pods, b.pods), cmp.Compare(a.slices, b.slices), cmp.Compare(b.frag, a.frag),
			cmp.Compare(a.node, b.node), cmp.Compare(a.dev, b.dev))
	})
	return out
}

// undoMove is what reverting one tentative move needs.
type undoMove struct {
	pod     int
	node    int
	charges []Charge
}

// step tries to free candidate c by moving every pod on it, at most budget
// pods (no bound when budget is 0 or less). It returns the moves and the
// GPUs they free, or nothing when the step is not worth keeping (it is
// then undone).
func (d *defragger) step(c defragCandidate, budget int) ([]DefragMove, []GPURef, error) {
	n := d.nodes[c.node]
	var on []int
	var held Units
	for i, p := range d.pods {
		if d.podNode[i] != c.node {
			continue
		}
		for _, ch := range p.Charges {
			if ch.Device == c.dev {
				if p.Pinned || p.Request == nil || d.moved[i] {
					return nil, nil, nil
				}
				on = append(on, i)
				held = held.Add(ch.Units)
			}
		}
	}
	if len(on) == 0 || held != n.Used[c.dev] || (budget > 0 && len(on) > budget) {
		// Usage no listed pod accounts for, or more moves than allowed.
		return nil, nil, nil
	}
	slices.SortStableFunc(on, func(a, b int) int {
		return cmp.Or(cmp.Compare(chargedSlices(d.pods[b].Charges), chargedSlices(d.pods[a].Charges)), cmp.Compare(d.pods[a].Name, d.pods[b].Name))
	})
	touched := map[int]int{c.node: countWholeFree(n)}
	// The candidate is not a destination while its pods move.
	n.Devices[c.dev].Healthy = false
	var undo []undoMove
	var moves []DefragMove
	ok := true
	for _, pi := range on {
		p := &d.pods[pi]
		from := d.podNode[pi]
		if _, seen := touched[from]; !seen {
			touched[from] = countWholeFree(d.nodes[from])
		}
		d.lift(pi, -1)
		to, charges := d.destination(pi)
		if to < 0 {
			d.lift(pi, 1)
			ok = false
			break
		}
		if _, seen := touched[to]; !seen {
			touched[to] = countWholeFree(d.nodes[to])
		}
		undo = append(undo, undoMove{pod: pi, node: from, charges: p.Charges})
		moves = append(moves, DefragMove{Pod: p.Name, FromNode: d.nodes[from].Name, FromGPUs: gpuIndices(d.nodes[from], p.Charges),
			ToNode: d.nodes[to].Name, ToGPUs: gpuIndices(d.nodes[to], charges), Slices: chargedSlices(p.Charges)})
		p.Charges, d.podNode[pi] = charges, to
		d.lift(pi, 1)
	}
	n.Devices[c.dev].Healthy = true
	gain := 0
	if ok {
		for ni, before := range touched {
			gain += countWholeFree(d.nodes[ni]) - before
		}
	}
	if !ok || gain <= 0 {
		for i := len(undo) - 1; i >= 0; i-- {
			u := undo[i]
			d.lift(u.pod, -1)
			d.pods[u.pod].Charges, d.podNode[u.pod] = u.charges, u.node
			d.lift(u.pod, 1)
		}
		return nil, nil, nil
	}
	var freed []GPURef
	for _, u := range undo {
		d.moved[u.pod] = true
	}
	for _, ni := range sortedKeys(touched) {
		tn := d.nodes[ni]
		if err := defragOvercommitted(tn); err != nil {
			return nil, nil, fmt.Errorf("defrag move over-commits: %w", err)
		}
		for _, u := range undo {
			if u.node != ni {
				continue
			}
			for _, ch := range u.charges {
				if wholeFree(tn, ch.Device) && !slices.Contains(freed, GPURef{Node: tn.Name, GPU: tn.Devices[ch.Device].Index}) {
					freed = append(freed, GPURef{Node: tn.Name, GPU: tn.Devices[ch.Device].Index})
				}
			}
		}
	}
	return moves, freed, nil
}

// lift removes (sign < 0) or adds (sign > 0) pod pi's charges and CPU on
// its node.
func (d *defragger) lift(pi, sign int) {
	p := &d.pods[pi]
	n := d.nodes[d.podNode[pi]]
	n.Apply(p.Charges, sign)
	if n.CPUCapacity > 0 {
		n.CPUUsed += int64(sign) * p.Request.CPUMilli
	}
}

// destination returns the node position and charges of the best move of
// pod pi (lifted from its node), or -1.
func (d *defragger) destination(pi int) (int, []Charge) {
	p := &d.pods[pi]
	r := p.Request
	best := -1
	var bestCharges []Charge
	var bestDelta, bestScore float64
	for ni, n := range d.nodes {
		if !mayTake(n, r) || (d.allowed != nil && !d.allowed(p, n)) {
			continue
		}
		a, st := d.fitter.Fit(n, r, d.policy)
		if !st.IsSuccess() || landsOnFree(n, a.Charges) {
			continue
		}
		before := Fragmentation(d.policy, n)
		n.Apply(a.Charges, 1)
		delta := Fragmentation(d.policy, n) - before
		n.Apply(a.Charges, -1)
		score := d.fitter.NodeScore(d.policy, n, a)
		if best < 0 || delta < bestDelta || (delta == bestDelta && score > bestScore) {
			best, bestDelta, bestScore = ni, delta, score
			bestCharges = slices.Clone(a.Charges)
		}
	}
	return best, bestCharges
}

// mayTake is a necessary condition for r to fit n: the CPU, and for each
// GPU container enough healthy GPUs already in use with its per-GPU share
// free. Fit decides.
func mayTake(n *Node, r *PodRequest) bool {
	if n.CPUCapacity > 0 && r.CPUMilli > n.CPUCapacity-n.CPUUsed {
		return false
	}
	for _, c := range r.Containers {
		if !c.HasGPU() {
			continue
		}
		u, k := c.PerGPU(), c.GPUs()
		for i := range n.Devices {
			if k > 0 && n.Devices[i].Healthy && !n.Used[i].IsZero() && u.Fits(n.Free(i)) {
				k--
			}
		}
		if k > 0 {
			return false
		}
	}
	return true
}

// landsOnFree reports whether charges take any of a wholly free GPU.
func landsOnFree(n *Node, charges []Charge) bool {
	for _, c := range charges {
		if wholeFree(n, c.Device) {
			return true
		}
	}
	return false
}

func chargedSlices(cs []Charge) int64 {
	var s int64
	for _, c := range cs {
		s += c.Units.Slices
	}
	return s
}

// gpuIndices returns the GPU indices (Device.Index) of the charges' devices.
func gpuIndices(n *Node, cs []Charge) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = n.Devices[c.Device].Index
	}
	return out
}

// defragOvercommitted is Node.Overcommitted plus the node's CPU when it
// tracks it.
func defragOvercommitted(n *Node) error {
	if err := n.Overcommitted(); err != nil {
		return err
	}
	if n.CPUCapacity > 0 && n.CPUUsed > n.CPUCapacity {
		return fmt.Errorf("node %s cpu over-committed: used %d of %d", n.Name, n.CPUUsed, n.CPUCapacity)
	}
	return nil
}

func sortedKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
