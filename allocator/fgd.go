package allocator

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gpuslice/gpuslice/api"
)

// Fragmentation-aware policy names.
const (
	// PolicyFGD is Fragmentation Gradient Descent (Weng et al., ATC'23) as
	// published: the node and GPU that least increase the expected
	// fragmentation win; ties go to the kube-scheduler's tie-break.
	PolicyFGD = "fgd"
	// PolicyGpuslice is gpuslice's fragmentation-aware policy: FGD with a
	// fragmentation measure that also sees GPU stranded by the node's CPU
	// and leftovers inside a GPU (FGDConfig.Hybrid), and a packing
	// tie-break (FGDConfig.PackTieBreak). It measured best on the trace
	// benchmark (docs/trace-benchmark.md).
	PolicyGpuslice = "gpuslice"
)

// TaskClass is one typical request class of the workload: what one pod asks
// for. Count 0 is a pod that asks for no GPU.
type TaskClass struct {
	// CPUMilli is the host CPU request.
	CPUMilli int64
	// PerGPU is the demand on each of the pod's GPUs, in slices, core units
	// and slots.
	PerGPU Units
	// GPUShare, when positive, is the class's gpu-mem demand as a fraction
	// of a GPU (0.25 is a quarter GPU): on each GPU it is that share of the
	// GPU's slices, rounded up, and PerGPU.Slices is not used. The default
	// seed is written this way, so that it fits any slice size and GPU.
	GPUShare float64
	// Count is the number of GPUs.
	Count int
	// Models, when not empty, restricts the class to these GPU models.
	Models []string
	// Sandbox is the VM-sandbox isolation mode of the class's pods
	// (PodRequest.Sandbox), "" for pods that run containers: it says which
	// GPUs the class may use (api.IsolationAllowed).
	Sandbox api.IsolationMode
}

// WeightedClass is a class and its weight in observations, used to seed the
// histogram from configuration.
type WeightedClass struct {
	Class  TaskClass
	Weight float64
}

// ClassOf returns the task class of a pod request: its host CPU and, for
// pods with GPU containers, the largest per-GPU demand and GPU count.
func ClassOf(r *PodRequest) TaskClass {
	c := TaskClass{CPUMilli: r.CPUMilli, Sandbox: r.Sandbox}
	if !r.HasGPU() {
		return c
	}
	u, k := r.MaxPerGPU()
	c.PerGPU, c.Count = u, k
	if len(r.Models) > 0 {
		c.Models = slices.Clone(r.Models)
		sort.Strings(c.Models)
	}
	return c
}

func (c TaskClass) key() string {
	k := fmt.Sprintf("%d/%d/%d/%d/%d/%s", c.CPUMilli, c.PerGPU.Slices, c.PerGPU.Core, c.PerGPU.Slots, c.Count, strings.Join(c.Models, "|"))
	if c.GPUShare > 0 {
		k += fmt.Sprintf("/share=%g", c.GPUShare)
	}
	if c.Sandbox != "" {
		k += "/sandbox=" + string(c.Sandbox)
	}
	return k
}

// sharedSlices returns share (a fraction of a GPU) of a GPU of capacity
// slices, rounded up and at least one slice.
func sharedSlices(share float64, capacity int64) int64 {
	// The epsilon keeps exact products (0.25 * 1000) from rounding up.
	return max(int64(math.Ceil(share*float64(capacity)-1e-9)), 1)
}

// FGDConfig configures the fragmentation-aware policy.
type FGDConfig struct {
	// HalfLife is the number of later observations after which an
	// observation's weight in the histogram halves (default 2000).
	HalfLife float64
	// Coverage is the share of the (decayed) observations the typical
	// classes cover, most frequent first (default 0.95, the paper's). The
	// registered policies use 1: learned online, a 95% cut drops the rare
	// multi-GPU classes and the policy then breaks up whole nodes.
	Coverage float64
	// MaxClasses caps the number of typical classes (default 128).
	MaxClasses int
	// Seed is the histogram's starting content, for a scheduler that has
	// seen no request yet. Nil means DefaultFGDSeed.
	Seed []WeightedClass
	// PackTieBreak breaks ties between nodes (and GPUs) with the same
	// fragmentation delta by packing: the node left with the least free
	// GPU and CPU share wins. The published FGD leaves ties to the
	// kube-scheduler (random).
	PackTieBreak bool
	// Multiplicity measures F_n(m) as the free GPU that pods of class m
	// could not use if they alone filled the node (as many as its GPUs and
	// CPU allow), rather than whether one more pod of m fits. It sees GPU
	// that the node's CPU strands and leftovers smaller than the share.
	Multiplicity bool
	// Hybrid averages the FGD and the Multiplicity forms.
	Hybrid bool
	// ShareStep is how far the learned distribution may move before the
	// policy scores with it: Observe publishes a new distribution when a
	// class enters or leaves the typical set or some class's share has
	// moved by the step or more since the last one. The step is ShareStep
	// (default 0.005, half a percentage point) or, while the histogram
	// holds few observations, youngNoise/sqrt(W) for W (decayed)
	// observations, if larger: a share learned from W observations is
	// uncertain by up to 0.5/sqrt(W), and moves well inside that are
	// noise. Negative: every observation is published. Between two
	// publications the policy decides a request on an unchanged node the
	// same way (Revision), so that the extender reuses its fits in a burst
	// of pods.
	ShareStep float64
	// Fixed makes the seed the distribution: Observe learns nothing. For
	// a workload whose class mix is known in advance (the FGD paper's
	// simulator computes it from the whole pod list before placing any).
	Fixed bool
	// Quantised scores as the FGD paper's scheduler plugin does: a node (and,
	// for a share of one GPU, each GPU) scores int(100*sigmoid(decrease)),
	// the fragmentation decrease in GPUs through a logistic sigmoid
	// truncated to an integer, so that decreases within about 0.04 GPU tie
	// (ties between GPUs go to the lowest index, between nodes to the
	// scheduler's random tie-break). Off, the policy scores the
	// decrease itself.
	Quantised bool
	// OrderTieBreak breaks ties between nodes by one fixed order of the
	// nodes (a hash of the node name), the same for every pod, so that
	// pods of equal score fill the nodes one after another, as the FGD
	// paper's simulator does (docs/trace-benchmark.md, "A faithful FGD").
	// Ignored when PackTieBreak is set.
	OrderTieBreak bool
}

// DefaultFGDSeed is a generic starting workload: a quarter and a half of a
// GPU, whole GPUs and multi-GPU pods, weighing ten observations in all, so
// that the first real requests quickly dominate. GPU demands are fractions
// of a GPU (TaskClass.GPUShare), scaled to each GPU's slices; CPU is in
// milli-cores.
func DefaultFGDSeed() []WeightedClass {
	mk := func(cpu int64, share float64, k int, w float64) WeightedClass {
		return WeightedClass{Class: TaskClass{CPUMilli: cpu, PerGPU: Units{Slots: 1}, GPUShare: share, Count: k}, Weight: w}
	}
	return []WeightedClass{
		mk(4000, 0.25, 1, 1), mk(6000, 0.5, 1, 2), mk(8000, 1, 1, 4),
		mk(16000, 1, 2, 1), mk(32000, 1, 4, 1), mk(64000, 1, 8, 1),
	}
}

// GpusliceConfig is the configuration of the registered PolicyGpuslice.
func GpusliceConfig() FGDConfig {
	return FGDConfig{Coverage: 1, PackTieBreak: true, Hybrid: true}
}

// FGDPublishedConfig is the configuration of the registered PolicyFGD: the
// published rule with every learned class kept (see FGDConfig.Coverage).
func FGDPublishedConfig() FGDConfig {
	return FGDConfig{Coverage: 1}
}

func (c *FGDConfig) defaults() {
	if c.HalfLife <= 0 {
		c.HalfLife = 2000
	}
	if c.Coverage <= 0 || c.Coverage > 1 {
		c.Coverage = 0.95
	}
	if c.MaxClasses <= 0 {
		c.MaxClasses = 128
	}
	if c.Seed == nil {
		c.Seed = DefaultFGDSeed()
	}
	if c.ShareStep == 0 {
		c.ShareStep = 0.005
	}
}

// FGD is the fragmentation-aware policy. It learns the typical task classes
// online from the requests it observes (a decaying histogram) and places a
// pod on the node and GPUs that least increase the node's expected
// fragmentation F_n(M) = sum_m p_m F_n(m), where F_n(m) is the free GPU share
// on n that class m cannot use. It is safe for concurrent use: Observe
// publishes an immutable snapshot that the scoring methods read, a new one
// only when the distribution has moved (FGDConfig.ShareStep).
type FGD struct {
	name string
	cfg  FGDConfig

	mu    sync.Mutex
	hist  map[string]*histEntry
	inc   float64 // weight of the next observation
	decay float64 // factor by which inc grows per observation
	seen  int64
	snap  atomic.Pointer[fgdSnapshot]
}

type histEntry struct {
	class  TaskClass
	key    string
	weight float64
}

// NewFGD returns a fragmentation-aware policy named name.
func NewFGD(name string, cfg FGDConfig) *FGD {
	cfg.defaults()
	f := &FGD{name: name, cfg: cfg, hist: make(map[string]*histEntry), inc: 1, decay: math.Exp(math.Ln2 / cfg.HalfLife)}
	for _, wc := range cfg.Seed {
		f.add(wc.Class, wc.Weight)
	}
	f.publish()
	return f
}

// Name implements Policy.
func (f *FGD) Name() string { return f.name }

// Observe implements Observer: it adds the request's class to the
// histogram, with older observations decaying.
func (f *FGD) Observe(r *PodRequest) {
	if f.cfg.Fixed {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inc *= f.decay
	f.add(ClassOf(r), 1)
	f.seen++
	if f.inc > 1e100 {
		for _, e := range f.hist {
			e.weight /= f.inc
		}
		f.inc = 1
	}
	f.publish()
}

// Classes returns the current typical classes and their shares, most
// frequent first.
func (f *FGD) Classes() []WeightedClass {
	s := f.snap.Load()
	return slices.Clone(s.classes)
}

// add adds w observations of c, scaled by the current increment. Callers
// hold mu (or own f exclusively).
func (f *FGD) add(c TaskClass, w float64) {
	k := c.key()
	e, ok := f.hist[k]
	if !ok {
		e = &histEntry{class: c, key: k}
		f.hist[k] = e
	}
	e.weight += w * f.inc
}

// publish rebuilds the snapshot from the histogram. Callers hold mu.
func (f *FGD) publish() {
	es := make([]*histEntry, 0, len(f.hist))
	var total float64
	for _, e := range f.hist {
		es = append(es, e)
		total += e.weight
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].weight != es[j].weight {
			return es[i].weight > es[j].weight
		}
		return es[i].key < es[j].key
	})
	var keep []*histEntry
	var covered float64
	for _, e := range es {
		if len(keep) >= f.cfg.MaxClasses || (total > 0 && covered/total >= f.cfg.Coverage) {
			break
		}
		keep = append(keep, e)
		covered += e.weight
	}
	old := f.snap.Load()
	if old != nil && old.near(keep, covered, f.step(total)) {
		return
	}
	s := newSnapshot(keep, covered)
	s.seq = 1
	if old != nil {
		s.seq = old.seq + 1
	}
	f.snap.Store(s)
}

// youngNoise scales the publication step of a histogram with few
// observations (FGDConfig.ShareStep): a quarter of 1/sqrt(W), half the
// largest standard error of a share learned from W observations.
const youngNoise = 0.25

// step is the publication step for a histogram of total weight total.
// Callers hold mu.
func (f *FGD) step(total float64) float64 {
	if f.cfg.ShareStep < 0 {
		return -1
	}
	w := total / f.inc // observations, in units of the latest one
	if w <= 0 {
		return f.cfg.ShareStep
	}
	return max(f.cfg.ShareStep, youngNoise/math.Sqrt(w))
}

// Revision implements Revisioned: the number of the published
// distribution, which changes only as ShareStep says.
func (f *FGD) Revision() Rev { return Rev{Of: f, Seq: f.snap.Load().seq} }

// near reports whether the typical classes keep (of total weight covered)
// are the ones of s, each with a share less than step away.
func (s *fgdSnapshot) near(keep []*histEntry, covered, step float64) bool {
	if step < 0 || len(keep) != len(s.keys) || covered <= 0 {
		return false
	}
	for _, e := range keep {
		i, ok := s.index[e.key]
		if !ok || math.Abs(e.weight/covered-s.classes[i].Weight) >= step {
			return false
		}
	}
	return true
}

// fgdSnapshot is an immutable set of typical classes grouped by GPU demand:
// the classes of a group differ only in CPU.
type fgdSnapshot struct {
	// seq numbers the snapshots of one FGD from 1 (Revision).
	seq     uint64
	classes []WeightedClass
	// keys[i] is the key of classes[i]; index maps it back to i.
	keys  []string
	index map[string]int
	// noGPU is the share of classes that ask for no GPU.
	noGPU  float64
	groups []fgdGroup
}

type fgdGroup struct {
	perGPU Units
	// gpuShare is TaskClass.GPUShare: when positive, perGPU.Slices is that
	// share of each GPU's slices.
	gpuShare float64
	count    int
	models   []string
	// sandbox is TaskClass.Sandbox.
	sandbox api.IsolationMode
	// cpu is sorted ascending; cum[j] is the share of the group's classes
	// with CPU <= cpu[j].
	cpu []int64
	cum []float64
	// w[j] is the share of the classes with CPU cpu[j].
	w     []float64
	share float64
}

func newSnapshot(keep []*histEntry, covered float64) *fgdSnapshot {
	s := &fgdSnapshot{index: make(map[string]int, len(keep))}
	if covered <= 0 {
		return s
	}
	byKey := map[string]int{}
	type cw struct {
		cpu int64
		w   float64
	}
	var members [][]cw
	for _, e := range keep {
		p := e.weight / covered
		s.index[e.key] = len(s.keys)
		s.keys = append(s.keys, e.key)
		s.classes = append(s.classes, WeightedClass{Class: e.class, Weight: p})
		if e.class.Count == 0 {
			s.noGPU += p
			continue
		}
		k := fmt.Sprintf("%d/%d/%d/%d/%s/%g/%s", e.class.PerGPU.Slices, e.class.PerGPU.Core, e.class.PerGPU.Slots, e.class.Count, strings.Join(e.class.Models, "|"), e.class.GPUShare, e.class.Sandbox)
		gi, ok := byKey[k]
		if !ok {
			gi = len(s.groups)
			byKey[k] = gi
			s.groups = append(s.groups, fgdGroup{perGPU: e.class.PerGPU, gpuShare: e.class.GPUShare, count: e.class.Count, models: e.class.Models, sandbox: e.class.Sandbox})
			members = append(members, nil)
		}
		s.groups[gi].share += p
		members[gi] = append(members[gi], cw{e.class.CPUMilli, p})
	}
	for gi := range s.groups {
		m := members[gi]
		sort.Slice(m, func(i, j int) bool { return m[i].cpu < m[j].cpu })
		g := &s.groups[gi]
		var c float64
		for _, x := range m {
			c += x.w
			if n := len(g.cpu); n > 0 && g.cpu[n-1] == x.cpu {
				g.cum[n-1] = c
				g.w[n-1] += x.w
				continue
			}
			g.cpu = append(g.cpu, x.cpu)
			g.cum = append(g.cum, c)
			g.w = append(g.w, x.w)
		}
	}
	return s
}

// fitShare returns the share of the group's classes whose CPU fits in
// cpuFree (all of them when cpuFree < 0: CPU not tracked).
func (g *fgdGroup) fitShare(cpuFree int64) float64 {
	if cpuFree < 0 {
		return g.share
	}
	lo, hi := 0, len(g.cpu)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if g.cpu[m] > cpuFree {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == 0 {
		return 0
	}
	return g.cum[lo-1]
}

// frag returns the expected fragmentation, in GPUs, of a node whose devices
// have the given free units and cpuFree free CPU (-1: not tracked), in FGD's
// form (one) and in the Multiplicity form (mult); want selects which to
// compute (fragOne, fragMult or both).
func (s *fgdSnapshot) frag(n *Node, free []Units, cpuFree int64, want int) (one, mult float64) {
	var rBuf [16]float64
	r := rBuf[:0]
	if len(free) > len(rBuf) {
		r = make([]float64, 0, len(free))
	}
	var sumR float64
	for i := range free {
		x := 0.0
		if c := n.Devices[i].Capacity.Slices; c > 0 && n.Devices[i].Healthy && free[i].Slices > 0 {
			x = float64(free[i].Slices) / float64(c)
		}
		r = append(r, x)
		sumR += x
	}
	if sumR == 0 {
		return 0, 0
	}
	one = s.noGPU * sumR
	mult = one
	for gi := range s.groups {
		g := &s.groups[gi]
		d := g.perGPU
		cnt := 0
		var fs float64
		var slots, capa, capaSlices int64
		for i := range free {
			if r[i] == 0 {
				continue
			}
			dev := &n.Devices[i]
			if g.gpuShare > 0 {
				d.Slices = sharedSlices(g.gpuShare, dev.Capacity.Slices)
			}
			// What a pod of the class would be charged here.
			u := dev.Charge(d)
			if !api.IsolationAllowed(g.sandbox, dev.Isolation) || !dev.FitsInstance(d) || !u.Fits(free[i]) ||
				(len(g.models) > 0 && !slices.Contains(g.models, dev.Model)) {
				fs += r[i]
				continue
			}
			cnt++
			if want&fragMult != 0 {
				slots += podsOn(free[i], u)
				capa, capaSlices = dev.Capacity.Slices, u.Slices
			}
		}
		if want&fragOne != 0 {
			if cnt < g.count {
				one += g.share * sumR
			} else {
				w := g.fitShare(cpuFree)
				one += w*fs + (g.share-w)*sumR
			}
		}
		if want&fragMult != 0 {
			pods := slots / int64(max(g.count, 1))
			if pods == 0 || capa == 0 {
				mult += g.share * sumR
				continue
			}
			per := float64(int64(g.count)*capaSlices) / float64(capa)
			for j, c := range g.cpu {
				np := pods
				if cpuFree >= 0 && c > 0 {
					np = min(np, cpuFree/c)
				}
				mult += g.w[j] * max(sumR-float64(np)*per, 0)
			}
		}
	}
	return one, mult
}

// Which forms frag computes.
const (
	fragOne  = 1
	fragMult = 2
)

// podsOn returns how many times per-GPU demand d fits in free.
func podsOn(free, d Units) int64 {
	k := int64(math.MaxInt64)
	if d.Slices > 0 {
		k = free.Slices / d.Slices
	}
	if d.Core > 0 {
		k = min(k, free.Core/d.Core)
	}
	switch {
	case d.Slots == 1:
		k = min(k, free.Slots)
	case d.Slots > 0:
		k = min(k, free.Slots/d.Slots)
	}
	return k
}

// freeOf fills buf with the view's free units per device.
func freeOf(v *NodeView, buf []Units) []Units {
	buf = buf[:0]
	for i := 0; i < v.Len(); i++ {
		buf = append(buf, v.Free(i))
	}
	return buf
}

func cpuAfter(v *NodeView, pod int64) int64 {
	c := v.CPUFree()
	if c < 0 {
		return -1
	}
	return max(c-pod, 0)
}

// ScoreDevice implements Policy: minus the node's expected fragmentation
// after taking d (the charge) on device i (the pod's CPU taken too).
func (f *FGD) ScoreDevice(v *NodeView, i int, d Units) float64 {
	snap := f.snap.Load()
	var buf [16]Units
	free := freeOf(v, buf[:0])
	var s float64
	if f.cfg.Quantised {
		before := f.frag(snap, v.Node, free, v.CPUFree())
		free[i] = free[i].Sub(d)
		s = quantise(before - f.frag(snap, v.Node, free, cpuAfter(v, v.PodCPU())))
	} else {
		// The node's fragmentation before is the same for every device.
		free[i] = free[i].Sub(d)
		s = -f.frag(snap, v.Node, free, cpuAfter(v, v.PodCPU()))
	}
	if f.cfg.PackTieBreak {
		// Among GPUs with equal fragmentation, the fullest one.
		s -= tieWeight * float64(free[i].Slices) / float64(max(v.Capacity(i).Slices, 1))
	}
	return s
}

// ScoreNode implements Policy: minus the increase of the node's expected
// fragmentation caused by the assignment.
func (f *FGD) ScoreNode(v *NodeView, a *Assignment) float64 {
	snap := f.snap.Load()
	var buf [16]Units
	free := freeOf(v, buf[:0])
	before := f.frag(snap, v.Node, free, v.CPUFree())
	for _, c := range a.Charges {
		free[c.Device] = free[c.Device].Sub(c.Units)
	}
	cpu := cpuAfter(v, a.CPUMilli)
	s := before - f.frag(snap, v.Node, free, cpu)
	if f.cfg.Quantised {
		s = quantise(s)
	}
	switch {
	case f.cfg.PackTieBreak:
		s += tieWeight * packScore(v, free, cpu)
	case f.cfg.OrderTieBreak:
		s -= tieWeight * nodeRank(v.Node.Name)
	}
	return s
}

func (f *FGD) frag(s *fgdSnapshot, n *Node, free []Units, cpuFree int64) float64 {
	switch {
	case f.cfg.Hybrid:
		one, mult := s.frag(n, free, cpuFree, fragOne|fragMult)
		return (one + mult) / 2
	case f.cfg.Multiplicity:
		_, mult := s.frag(n, free, cpuFree, fragMult)
		return mult
	}
	one, _ := s.frag(n, free, cpuFree, fragOne)
	return one
}

// quantise is the FGD paper's integer score of a fragmentation decrease of
// x GPUs: int64(sigmoid(x) * 100), in [0, 100].
func quantise(x float64) float64 {
	return math.Trunc(100 / (1 + math.Exp(-x)))
}

// nodeRank places a node in the fixed order of OrderTieBreak: a hash of
// its name in [0, 1).
func nodeRank(name string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // a hash.Hash never fails to write
	// FNV-1a differs only in its low bits for names that differ in their
	// last byte: mix them into the high bits (splitmix64's finaliser).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// tieWeight scales the packing tie-break far below any fragmentation
// difference that matters (a millionth of a GPU).
const tieWeight = 1e-6

// packScore is minus the node's free share of GPU plus free share of CPU
// after the pod: higher for fuller nodes.
func packScore(v *NodeView, free []Units, cpuFree int64) float64 {
	var fr, capa float64
	for i := range free {
		fr += float64(free[i].Slices)
		capa += float64(v.Capacity(i).Slices)
	}
	s := 0.0
	if capa > 0 {
		s -= fr / capa
	}
	if cpuFree >= 0 && v.Node.CPUCapacity > 0 {
		s -= float64(cpuFree) / float64(v.Node.CPUCapacity)
	}
	return s
}
