// Command gpuslice-sim replays an Alibaba GPU-sharing trace through the
// gpuslice allocator and reports the GPU allocation ratio per policy (see
// docs/trace-benchmark.md). Its flags are Go-style single-dash flags
// (make bench-trace and the docs use them), so it takes from internal/cli
// only the signal context and the version.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gpuslice/gpuslice/internal/cli"
	"github.com/gpuslice/gpuslice/internal/sim"
	"github.com/gpuslice/gpuslice/internal/version"
)

func main() {
	var o sim.CLIOptions
	var seeds, policies string
	flag.StringVar(&o.Trace, "trace", "../shared/trace/openb_pod_list_default.csv", "pod list CSV (name, cpu_milli, num_gpu, gpu_milli[, gpu_spec])")
	flag.StringVar(&o.NodeList, "nodes", "../shared/trace/openb_node_list_gpu_node.csv", "node list CSV (sn, cpu_milli, gpu, model)")
	flag.StringVar(&seeds, "seeds", "42,43,44,45,46,47,48,49,50,51", "comma-separated workload seeds")
	flag.StringVar(&policies, "policies", strings.Join(sim.DefaultPolicies(), ","), "comma-separated policies")
	flag.StringVar(&o.OutDir, "out", filepath.Join(os.TempDir(), "gpuslice-sim"), "directory for the curves CSV and PNG plot (\"\" for none)")
	flag.Float64Var(&o.Target, "target", 1.3, "arrived GPU demand to reach, as a share of capacity")
	flag.IntVar(&o.Parallel, "parallel", runtime.GOMAXPROCS(0), "simulations run at once")
	flag.BoolVar(&o.Quiet, "quiet", false, "print only the table and RESULT lines")
	units := flag.String("units", string(sim.UnitsMilli), "slice unit: milli (1 slice = 1 milli-GPU, the published protocol) or gib (1 GiB slices on each model's real memory)")
	flag.BoolVar(&o.Departures, "departures", false, "replay the trace's creation and deletion times instead of the published protocol; prints the allocation over time and DEPARTURES lines")
	flag.IntVar(&o.Samples, "samples", sim.DefaultSamples, "departures mode: number of evenly spaced sample times")
	flag.BoolVar(&o.Defrag, "defrag", false, "run the defragmentation advisor on each policy's cluster at 100% arrived instead of the benchmark; prints DEFRAG lines")
	flag.IntVar(&o.MaxMoves, "max-moves", 0, "defrag mode: most pod moves in a plan (0: no bound)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	o.Units = sim.Units(*units)
	for _, s := range strings.Split(seeds, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gpuslice-sim: bad seed %q: %v\n", s, err)
			os.Exit(2)
		}
		o.Seeds = append(o.Seeds, v)
	}
	for _, p := range strings.Split(policies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.Policies = append(o.Policies, p)
		}
	}
	ctx, stop := cli.SignalContext(context.Background())
	defer stop()
	if err := sim.Main(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gpuslice-sim: %v\n", err)
		os.Exit(1)
	}
}
