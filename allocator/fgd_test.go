package allocator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// milliNode is a trace-like node: GPUs of 1000 slices, the given slices
// used on each, and CPU tracked.
func milliNode(name string, cpu int64, used ...int64) *Node {
	devs := make([]Device, len(used))
	for i := range devs {
		devs[i] = Device{Index: i, UUID: fmt.Sprintf("%s-%d", name, i), Model: "T4", Capacity: Units{Slices: 1000, Core: 100, Slots: 1000}, Healthy: true}
	}
	n := NewNode(name, devs)
	for i, u := range used {
		if u > 0 {
			n.Used[i] = Units{Slices: u, Slots: 1}
		}
	}
	n.CPUCapacity = cpu
	return n
}

func share(cpu, slices int64) *PodRequest {
	return &PodRequest{CPUMilli: cpu, Containers: []ContainerRequest{{Name: "c", Slices: slices}}}
}

func multi(cpu int64, k int64) *PodRequest {
	return &PodRequest{CPUMilli: cpu, Containers: []ContainerRequest{{Name: "c", Slices: 1000 * k, Count: k}}}
}

// twoClasses is a workload of half 500-milli shares and half whole GPUs.
func twoClasses() FGDConfig {
	return FGDConfig{Coverage: 1, Seed: []WeightedClass{
		{Class: TaskClass{CPUMilli: 1000, PerGPU: Units{Slices: 500, Slots: 1}, Count: 1}, Weight: 1},
		{Class: TaskClass{CPUMilli: 1000, PerGPU: Units{Slices: 1000, Slots: 1}, Count: 1}, Weight: 1},
	}}
}

// TestFGDScoresByHand checks the fragmentation deltas against values
// computed by hand for a 300-milli share with the two-class workload
// (F_n = 0.5*F(500) + 0.5*F(1000)).
func TestFGDScoresByHand(t *testing.T) {
	tests := []struct {
		name    string
		used    []int64
		cpu     int64
		wantDev int
		// wantDelta is F_before - F_after.
		wantDelta float64
	}{
		// [1000,1000] -> [700,1000]: F(1000) gains 0.7.
		{name: "empty node", used: []int64{0, 0}, cpu: 64000, wantDev: 0, wantDelta: -0.35},
		// [1000,500] -> [1000,200]: F(1000) 0.5 -> 0.2, F(500) 0 -> 0.2.
		{name: "half used", used: []int64{0, 500}, cpu: 64000, wantDev: 1, wantDelta: 0.05},
		// [1000,300] -> [1000,0]: F(1000) 0.3 -> 0, F(500) 0.3 -> 0.
		{name: "exact fit", used: []int64{0, 700}, cpu: 64000, wantDev: 1, wantDelta: 0.3},
		// CPU left after the pod (500) is below every class (1000): all
		// free GPU becomes fragment whichever GPU is used (a tie: the first
		// one), F 0.3 -> 1.0.
		{name: "cpu exhausted", used: []int64{0, 700}, cpu: 1500, wantDev: 0, wantDelta: 0.3 - 1.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFGD(PolicyFGD, twoClasses())
			n := milliNode("n", tc.cpu, tc.used...)
			a, st := Fit(n, share(1000, 300), f)
			if st != nil {
				t.Fatal(st.Message())
			}
			if got := a.Containers[0].Devices; !cmp.Equal(got, []int{tc.wantDev}) {
				t.Errorf("devices = %v, want [%d]", got, tc.wantDev)
			}
			got := NodeScore(f, n, a) - float64(MaxTopoRank)*topoWeight
			if math.Abs(got-tc.wantDelta) > 1e-9 {
				t.Errorf("score = %v, want %v", got, tc.wantDelta)
			}
		})
	}
}

// TestPoliciesNeverChooseUnfitGPU places random requests on random nodes
// with every registered policy (and the FGD rule with the paper's 95% cut)
// and checks every choice fits: never an over-committed GPU, never a
// partly used GPU for a whole-GPU request, never a disallowed model.
func TestPoliciesNeverChooseUnfitGPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ps := []Policy{NewFGD(PolicyFGD, FGDConfig{})}
	for _, name := range PolicyNames() {
		p, err := NewPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		obs, _ := p.(Observer)
		for iter := 0; iter < 2000; iter++ {
			ng := 1 + rng.IntN(8)
			used := make([]int64, ng)
			for i := range used {
				used[i] = []int64{0, 0, 250, 500, 900, 1000}[rng.IntN(6)]
			}
			n := milliNode("n", 32000, used...)
			if rng.IntN(3) == 0 {
				n.Devices[rng.IntN(ng)].Model = "A10"
			}
			var r *PodRequest
			switch rng.IntN(3) {
			case 0:
				r = share(int64(rng.IntN(8000)), int64(1+rng.IntN(999)))
			case 1:
				r = multi(int64(rng.IntN(8000)), int64(1+rng.IntN(4)))
			default:
				r = share(int64(rng.IntN(8000)), 1000)
			}
			if rng.IntN(4) == 0 {
				r.Models = []string{"A10"}
			}
			if obs != nil {
				obs.Observe(r)
			}
			a, st := Fit(n, r, p)
			if st != nil {
				continue
			}
			per, k := r.MaxPerGPU()
			devs := a.Containers[0].Devices
			if len(devs) != k {
				t.Fatalf("%d devices for %d GPUs", len(devs), k)
			}
			for _, d := range devs {
				if !per.Fits(n.Free(d)) {
					t.Fatalf("iter %d: device %d free %+v cannot take %+v (used %v)", iter, d, n.Free(d), per, used)
				}
				if !r.ModelAllowed(n.Devices[d].Model) {
					t.Fatalf("iter %d: device %d model %s not allowed", iter, d, n.Devices[d].Model)
				}
			}
			n.Apply(a.Charges, 1)
			if err := n.Overcommitted(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFGDHistogramLearnsAndDecays(t *testing.T) {
	a := TaskClass{CPUMilli: 4000, PerGPU: Units{Slices: 500, Slots: 1}, Count: 1}
	b := TaskClass{CPUMilli: 8000, PerGPU: Units{Slices: 1000, Slots: 1}, Count: 2}
	reqB := multi(8000, 2)
	approx := cmpopts.EquateApprox(0, 1e-9)
	tests := []struct {
		name     string
		halfLife float64
		observe  int
		want     []WeightedClass
	}{
		{name: "seed only", halfLife: 100, observe: 0, want: []WeightedClass{{Class: a, Weight: 1}}},
		// Seed weight 1, then 1 observation of b weighing 2^(1/100).
		{name: "one observation", halfLife: 100, observe: 1, want: []WeightedClass{
			{Class: b, Weight: math.Pow(2, 0.01) / (1 + math.Pow(2, 0.01))}, {Class: a, Weight: 1 / (1 + math.Pow(2, 0.01))}}},
		// After one half-life of b, a's seed weight counts half as much as
		// a fresh observation: a = 1, b = sum_{i=1..100} 2^(i/100).
		{name: "one half-life", halfLife: 100, observe: 100, want: func() []WeightedClass {
			var wb float64
			for i := 1; i <= 100; i++ {
				wb += math.Pow(2, float64(i)/100)
			}
			return []WeightedClass{{Class: b, Weight: wb / (wb + 1)}, {Class: a, Weight: 1 / (wb + 1)}}
		}()},
		// Without decay a keeps its weight of one observation.
		{name: "no decay", halfLife: math.Inf(1), observe: 3, want: []WeightedClass{{Class: b, Weight: 0.75}, {Class: a, Weight: 0.25}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// ShareStep -1: every observation is published, to check the
			// histogram exactly (TestFGDShareStep checks the step).
			f := NewFGD(PolicyFGD, FGDConfig{HalfLife: tc.halfLife, Coverage: 1, ShareStep: -1, Seed: []WeightedClass{{Class: a, Weight: 1}}})
			for i := 0; i < tc.observe; i++ {
				f.Observe(reqB)
			}
			if diff := cmp.Diff(tc.want, f.Classes(), approx); diff != "" {
				t.Errorf("classes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFGDShareStep: the published distribution follows the learned one to
// within the step (ShareStep, or more while the histogram is young),
// changes (a new Revision) only when a class enters or a share moves that
// far, and so changes far less often than observations arrive; with
// ShareStep -1 it changes on every observation.
func TestFGDShareStep(t *testing.T) {
	reqs := []*PodRequest{share(1000, 250), share(2000, 500), multi(4000, 1), multi(8000, 2), multi(16000, 4)}
	for _, tc := range []struct {
		name string
		step float64
		// most is the most revisions over the observations.
		most int
	}{
		{"default", 0, 100},
		{"coarse", 0.05, 40},
		{"every observation", -1, 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exact := NewFGD(PolicyGpuslice, FGDConfig{Coverage: 1, ShareStep: -1})
			f := NewFGD(PolicyGpuslice, FGDConfig{Coverage: 1, ShareStep: tc.step})
			rng := rand.New(rand.NewPCG(7, 7))
			revs := 0
			for i := 0; i < 3000; i++ {
				// A mix that drifts: the multi-GPU classes grow more
				// frequent halfway through.
				r := reqs[rng.IntN(3)]
				if i > 1500 && rng.IntN(2) == 0 {
					r = reqs[3+rng.IntN(2)]
				}
				before, _ := Revision(f)
				exact.Observe(r)
				f.Observe(r)
				after, _ := Revision(f)
				if after != before {
					revs++
				}
				step := currentStep(f)
				if tc.step > 0 && step < tc.step || tc.step < 0 && step != -1 {
					t.Fatalf("observation %d: step %v with ShareStep %v", i, step, tc.step)
				}
				got, want := f.Classes(), exact.Classes()
				if len(got) != len(want) {
					t.Fatalf("observation %d: %d classes published, %d learned", i, len(got), len(want))
				}
				shares := map[string]float64{}
				for _, c := range got {
					shares[c.Class.key()] = c.Weight
				}
				for _, c := range want {
					g, ok := shares[c.Class.key()]
					if !ok || (step > 0 && math.Abs(g-c.Weight) >= step) || (step < 0 && g != c.Weight) {
						t.Fatalf("observation %d: class %v published %v (present %v), learned %v, step %v", i, c.Class, g, ok, c.Weight, step)
					}
				}
			}
			if revs > tc.most || revs < len(reqs) {
				t.Errorf("%d revisions over 3000 observations, want %d to %d", revs, len(reqs), tc.most)
			}
			t.Logf("%d revisions", revs)
		})
	}
	// The young histogram's step: a quarter of 1/sqrt(W), then ShareStep.
	f := NewFGD(PolicyGpuslice, FGDConfig{Coverage: 1, HalfLife: math.Inf(1), Seed: []WeightedClass{}})
	for range 100 {
		f.Observe(reqs[0])
	}
	if got := currentStep(f); math.Abs(got-0.025) > 1e-12 {
		t.Errorf("step after 100 observations %v, want 0.025", got)
	}
	for range 9900 {
		f.Observe(reqs[0])
	}
	if got := currentStep(f); got != 0.005 {
		t.Errorf("step after 10,000 observations %v, want ShareStep 0.005", got)
	}
}

// currentStep is f's publication step now.
func currentStep(f *FGD) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var total float64
	for _, e := range f.hist {
		total += e.weight
	}
	return f.step(total)
}

// TestFGDCoverage keeps only the most frequent classes covering the share.
func TestFGDCoverage(t *testing.T) {
	f := NewFGD(PolicyFGD, FGDConfig{HalfLife: math.Inf(1), Coverage: 0.9, Seed: []WeightedClass{}})
	for i := 0; i < 95; i++ {
		f.Observe(share(1000, 500))
	}
	for i := 0; i < 5; i++ {
		f.Observe(multi(1000, 8))
	}
	want := []WeightedClass{{Class: TaskClass{CPUMilli: 1000, PerGPU: Units{Slices: 500, Slots: 1}, Count: 1}, Weight: 1}}
	if diff := cmp.Diff(want, f.Classes()); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
}

// TestFGDLearnsOnline: with whole 8-GPU jobs in the workload, the policy
// learns to keep an 8-GPU node whole and puts a share on the smaller node.
func TestFGDLearnsOnline(t *testing.T) {
	f := NewFGD(PolicyFGD, FGDConfig{Coverage: 1, Seed: []WeightedClass{}})
	big, small := milliNode("big", 96000, 0, 0, 0, 0, 0, 0, 0, 0), milliNode("small", 96000, 0, 0)
	score := func(n *Node) float64 {
		a, st := Fit(n, share(1000, 500), f)
		if st != nil {
			t.Fatal(st.Message())
		}
		return NodeScore(f, n, a)
	}
	f.Observe(share(1000, 500))
	if sb, ss := score(big), score(small); sb != ss {
		t.Fatalf("with only shares seen, nodes should tie: big %v small %v", sb, ss)
	}
	for i := 0; i < 10; i++ {
		f.Observe(multi(8000, 8))
	}
	if sb, ss := score(big), score(small); sb >= ss {
		t.Errorf("after 8-GPU jobs, big node score %v >= small node %v", sb, ss)
	}
}

func TestFGDModels(t *testing.T) {
	n := milliNode("n", 64000, 0, 0, 0)
	n.Devices[1].Model = "A10"
	for _, name := range []string{PolicyFGD, PolicyGpuslice} {
		p, err := NewPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		r := share(1000, 300)
		r.Models = []string{"A10"}
		a, st := Fit(n, r, p)
		if st != nil {
			t.Fatal(st.Message())
		}
		if got := a.Containers[0].Devices; !cmp.Equal(got, []int{1}) {
			t.Errorf("%s: devices %v, want [1]", name, got)
		}
		r.Models = []string{"V100"}
		if _, st := Fit(n, r, p); st == nil || st.Reason != ReasonModelNotAllowed {
			t.Errorf("%s: status %v, want %q", name, st, ReasonModelNotAllowed)
		}
	}
}

func TestFGDRegistry(t *testing.T) {
	a, err := NewPolicy(PolicyGpuslice)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPolicy(PolicyGpuslice)
	if a == b {
		t.Error("NewPolicy returned the same learning instance twice")
	}
	if _, ok := a.(Observer); !ok {
		t.Error("gpuslice policy is not an Observer")
	}
	if d, _ := NewPolicy(""); d.Name() != PolicyBinpack {
		t.Errorf("default policy %s, want binpack", d.Name())
	}
}

// TestFGDConcurrent observes and scores at once (run with -race).
func TestFGDConcurrent(t *testing.T) {
	f := NewFGD(PolicyGpuslice, FGDConfig{PackTieBreak: true})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := milliNode("n", 64000, 0, 300, 0, 700)
			for i := 0; i < 200; i++ {
				r := share(1000, int64(100+i%9*100))
				f.Observe(r)
				if a, st := Fit(n, r, f); st == nil {
					NodeScore(f, n, a)
				}
			}
		}()
	}
	wg.Wait()
}

// TestFGDSeedScalesToGPU checks the default seed is in fractions of a GPU:
// on a real node (1 GiB slices, 40 per GPU) the quarter, half and whole
// GPU classes fit an empty GPU, so only the multi-GPU classes (3 of the
// seed's 10 observations) count as fragmentation of a one-GPU node.
func TestFGDSeedScalesToGPU(t *testing.T) {
	for _, slices := range []int64{16, 40, 80, 1000} {
		n := NewNode("n", gpus(1, "A100", slices, 48))
		f := NewFGD(PolicyFGD, FGDPublishedConfig())
		one, _ := f.snap.Load().frag(n, []Units{n.Devices[0].Capacity}, -1, fragOne)
		if math.Abs(one-0.3) > 1e-9 {
			t.Errorf("%d-slice GPU: fragmentation %v, want 0.3", slices, one)
		}
	}
	for share, want := range map[float64]int64{0.25: 250, 0.5: 500, 1: 1000} {
		if got := sharedSlices(share, 1000); got != want {
			t.Errorf("sharedSlices(%v, 1000) = %d, want %d", share, got, want)
		}
	}
	if got := sharedSlices(0.25, 15); got != 4 {
		t.Errorf("sharedSlices(0.25, 15) = %d, want 4 (rounded up)", got)
	}
	if got := sharedSlices(0.001, 16); got != 1 {
		t.Errorf("sharedSlices(0.001, 16) = %d, want 1", got)
	}
}
