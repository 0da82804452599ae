package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpuslice/gpuslice/internal/trace"
)

// CLIOptions are the gpuslice-sim command's options.
type CLIOptions struct {
	Trace    string
	NodeList string
	Seeds    []uint64
	Policies []string
	OutDir   string
	Target   float64
	Parallel int
	Quiet    bool
	// Units is the unit mode (UnitsMilli when empty).
	Units Units
	// Departures replays the trace's creation and deletion times instead
	// of the published protocol (see Departures); Samples is the number of
	// times it reports the allocation at.
	Departures bool
	Samples    int
	// Defrag runs the defragmentation advisor (see Defrag) at 100%
	// arrived instead of the benchmark, with at most MaxMoves moves (0: no
	// bound).
	Defrag   bool
	MaxMoves int
}

// Summary is one policy's results over the seeds.
type Summary struct {
	Policy          string
	Seeds           int
	Mean100, Std100 float64
	Mean130, Std130 float64
	Min130, Max130  float64
	PerPod          time.Duration
	Skipped         float64
	// Free is the mean breakdown of the GPU left unallocated at the end.
	Free  Breakdown
	Curve []Point // mean over seeds
}

// Published holds the FGD paper's GPU allocation at 130% arrived for a
// trace, by policy.
type Published struct {
	Trace         string
	Random        float64
	BestFit       float64
	FGD           float64
	GPUPacking    float64
	GPUClustering float64
	DotProduct    float64
}

// PublishedFigures returns the means the FGD paper reports (trace README).
func PublishedFigures() []Published {
	return []Published{
		{Trace: "default", Random: 87.47, DotProduct: 90.85, GPUClustering: 91.88, GPUPacking: 92.00, BestFit: 93.08, FGD: 95.39},
		{Trace: "multigpu50", Random: 90.27, DotProduct: 94.85, GPUClustering: 95.81, GPUPacking: 96.18, BestFit: 95.74, FGD: 97.18},
		{Trace: "cpu250", Random: 80.42, DotProduct: 83.81, GPUClustering: 87.99, GPUPacking: 88.28, BestFit: 91.45, FGD: 93.41},
	}
}

// PublishedFor returns the published figures of a trace file, by the
// openb_pod_list_<name>.csv naming.
func PublishedFor(path string) (Published, bool) {
	base := strings.TrimSuffix(filepath.Base(path), ".csv")
	for _, p := range PublishedFigures() {
		if base == "openb_pod_list_"+p.Trace {
			return p, true
		}
	}
	return Published{}, false
}

// Summarise aggregates runs per policy, in the order policies first appear.
func Summarise(runs []*Run) []Summary {
	var order []string
	by := map[string][]*Run{}
	for _, r := range runs {
		if _, ok := by[r.Policy]; !ok {
			order = append(order, r.Policy)
		}
		by[r.Policy] = append(by[r.Policy], r)
	}
	out := make([]Summary, 0, len(order))
	for _, p := range order {
		rs := by[p]
		s := Summary{Policy: p, Seeds: len(rs), Min130: math.Inf(1), Max130: math.Inf(-1)}
		a100 := make([]float64, len(rs))
		a130 := make([]float64, len(rs))
		var t time.Duration
		var pods int
		for i, r := range rs {
			a100[i], a130[i] = r.Alloc100, r.Alloc130
			s.Min130, s.Max130 = min(s.Min130, r.Alloc130), max(s.Max130, r.Alloc130)
			t += r.PlaceTime
			pods += r.Pods
			s.Skipped += float64(r.Skipped) / float64(len(rs))
			s.Free.WholeGPUs += r.Unallocated.WholeGPUs / float64(len(rs))
			s.Free.PartialGPUs += r.Unallocated.PartialGPUs / float64(len(rs))
			s.Free.CPUStarved += r.Unallocated.CPUStarved / float64(len(rs))
		}
		if pods > 0 {
			s.PerPod = t / time.Duration(pods)
		}
		s.Mean100, s.Std100 = meanStd(a100)
		s.Mean130, s.Std130 = meanStd(a130)
		s.Curve = meanCurve(rs)
		out = append(out, s)
	}
	return out
}

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) == 1 {
		return m, 0
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

// meanCurve averages the curves point by point over the runs' common length.
func meanCurve(rs []*Run) []Point {
	n := math.MaxInt
	for _, r := range rs {
		n = min(n, len(r.Curve))
	}
	if n == math.MaxInt {
		return nil
	}
	out := make([]Point, n)
	for i := range out {
		for _, r := range rs {
			out[i].Arrived += r.Curve[i].Arrived / float64(len(rs))
			out[i].Alloc += r.Curve[i].Alloc / float64(len(rs))
		}
	}
	return out
}

// Main runs the benchmark the options describe and writes the report to w.
func Main(ctx context.Context, o CLIOptions, w io.Writer) error {
	nodes, err := trace.ReadNodes(o.NodeList)
	if err != nil {
		return fmt.Errorf("read node list: %w", err)
	}
	pods, err := trace.ReadPods(o.Trace)
	if err != nil {
		return fmt.Errorf("read pod list: %w", err)
	}
	name := filepath.Base(o.Trace)
	if o.Units, err = ParseUnits(string(o.Units)); err != nil {
		return err
	}
	switch {
	case o.Departures && o.Defrag:
		return fmt.Errorf("departures and defrag are separate modes; choose one")
	case o.Departures:
		return departuresMain(ctx, o, nodes, pods, w)
	case o.Defrag:
		return defragMain(ctx, o, nodes, pods, w)
	}
	if !o.Quiet {
		fmt.Fprintf(w, "trace %s: %d pods; cluster: %d nodes, %d GPUs; units %s; target %.0f%%; seeds %v; policies %v\n",
			name, len(pods), len(nodes), trace.GPUCount(nodes), o.Units, 100*o.Target, o.Seeds, o.Policies)
	}
	bo := Options{Nodes: nodes, Pods: pods, Policies: o.Policies, Seeds: o.Seeds, Target: o.Target, Units: o.Units, Parallel: o.Parallel}
	if !o.Quiet {
		bo.Progress = func(r *Run) {
			fmt.Fprintf(w, "  %-9s seed %-3d alloc100 %6.2f%% alloc130 %6.2f%% placed %d skipped %d, %v/pod\n",
				r.Policy, r.Seed, r.Alloc100, r.Alloc130, r.Placed, r.Skipped, r.PerPod().Round(time.Microsecond))
		}
	}
	runs, err := Benchmark(ctx, bo)
	if err != nil {
		return err
	}
	sums := Summarise(runs)
	WriteTable(w, name, sums)
	if o.OutDir != "" {
		if err := WriteOutputs(o.OutDir, name, runs, sums); err != nil {
			return err
		}
		if !o.Quiet {
			fmt.Fprintf(w, "curves and plot written to %s\n", o.OutDir)
		}
	}
	for _, s := range sums {
		fmt.Fprintf(w, "RESULT policy=%s trace=%s units=%s seeds=%d alloc100=%.2f alloc130=%.2f\n", s.Policy, name, o.Units, s.Seeds, s.Mean100, s.Mean130)
	}
	return nil
}

// WriteTable prints the summary table: mean and spread over the seeds, the
// distance to the offline reference, the placement time, and the published
// figures.
func WriteTable(w io.Writer, traceName string, sums []Summary) {
	var off *Summary
	for i := range sums {
		if sums[i].Policy == PolicyOffline {
			off = &sums[i]
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tseeds\talloc100 %\t±sd\talloc130 %\t±sd\tmin..max 130\tto offline (pp)\tfree whole/partial/cpu-starved %\tskipped\tplace/pod\t")
	for _, s := range sums {
		gap := "-"
		if off != nil && s.Policy != PolicyOffline {
			gap = fmt.Sprintf("%.2f", off.Mean130-s.Mean130)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f..%.2f\t%s\t%.2f/%.2f/%.2f\t%.0f\t%v\t\n", s.Policy, s.Seeds, s.Mean100, s.Std100,
			s.Mean130, s.Std130, s.Min130, s.Max130, gap, s.Free.WholeGPUs, s.Free.PartialGPUs, s.Free.CPUStarved, s.Skipped, s.PerPod.Round(time.Microsecond))
	}
	tw.Flush()
	if p, ok := PublishedFor(traceName); ok {
		fmt.Fprintf(w, "published (FGD paper, %s, alloc130 %%): Random %.2f, DotProduct %.2f, GPU Clustering %.2f, GPU Packing %.2f, Best-fit %.2f, FGD %.2f\n",
			p.Trace, p.Random, p.DotProduct, p.GPUClustering, p.GPUPacking, p.BestFit, p.FGD)
	}
}
