package sim

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gpuslice/gpuslice/internal/trace"
)

// departuresMain runs the departures mode of the command: every policy on
// every seed, a table of the samples, the CSV when o.OutDir is set, and one
// DEPARTURES line per run, last.
func departuresMain(ctx context.Context, o CLIOptions, nodes []trace.Node, pods []trace.Pod, w io.Writer) error {
	name := filepath.Base(o.Trace)
	if !o.Quiet {
		fmt.Fprintf(w, "trace %s (departures): %d pods; cluster: %d nodes, %d GPUs; units %s; seeds %v; policies %v\n",
			name, len(pods), len(nodes), trace.GPUCount(nodes), o.Units, o.Seeds, o.Policies)
	}
	bo := Options{Nodes: nodes, Pods: pods, Policies: o.Policies, Seeds: o.Seeds, Units: o.Units, Parallel: o.Parallel}
	runs, err := runGrid(bo, func(cfg Config) (*DepartureRun, error) { return Departures(ctx, cfg, o.Samples) }, nil)
	if err != nil {
		return err
	}
	WriteDeparturesTable(w, runs, len(o.Seeds) > 1)
	if o.OutDir != "" {
		base := strings.TrimSuffix(name, filepath.Ext(name))
		if err := WriteDeparturesCSV(filepath.Join(o.OutDir, base+"-departures.csv"), runs); err != nil {
			return err
		}
		if !o.Quiet {
			fmt.Fprintf(w, "samples written to %s\n", o.OutDir)
		}
	}
	for _, r := range runs {
		fmt.Fprintln(w, r.Line(name))
	}
	return nil
}

// WriteDeparturesTable prints one row per sample time (in days) and, per
// run, the allocation and the partly-free GPU in percent. Runs are named by
// policy, and by seed too when withSeed.
func WriteDeparturesTable(w io.Writer, runs []*DepartureRun, withSeed bool) {
	if len(runs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "day\t")
	for _, r := range runs {
		n := r.Policy
		if withSeed {
			n = fmt.Sprintf("%s/%d", r.Policy, r.Seed)
		}
		fmt.Fprintf(tw, "%s alloc %%\tpartly free %%\trunning\tfailed\t", n)
	}
	fmt.Fprintln(tw)
	for j := range runs[0].Samples {
		fmt.Fprintf(tw, "%.1f\t", float64(runs[0].Samples[j].Time)/86400)
		for _, r := range runs {
			x := r.Samples[j]
			fmt.Fprintf(tw, "%.2f\t%.2f\t%d\t%d\t", x.Alloc, x.PartlyFree, x.Running, x.Failed)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// WriteDeparturesCSV writes every run's samples to path.
func WriteDeparturesCSV(path string, runs []*DepartureRun) error {
	var rows [][]string
	for _, r := range runs {
		for _, x := range r.Samples {
			rows = append(rows, []string{r.Policy, string(r.Units), strconv.FormatUint(r.Seed, 10), strconv.FormatInt(x.Time, 10),
				csvFloat(x.Alloc), csvFloat(x.PartlyFree), strconv.Itoa(x.Running), strconv.Itoa(x.Failed)})
		}
	}
	return writeCSVFile(path, "departures CSV",
		[]string{"policy", "units", "seed", "time_s", "alloc_pct", "partly_free_pct", "running", "failed"}, rows)
}
