package sim

import (
	"context"
	"fmt"
	"sync"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// Options is a whole benchmark: every policy on every seed.
type Options struct {
	Nodes    []trace.Node
	Pods     []trace.Pod
	Policies []string
	Seeds    []uint64
	Target   float64
	// Units is the unit mode (UnitsMilli when empty).
	Units Units
	// Parallel is the number of simulations run at once (1 when <= 0).
	Parallel int
	// Progress, when set, is called after each finished run (serialised).
	Progress func(*Run)
}

// DefaultPolicies returns the benchmark's default policy list.
func DefaultPolicies() []string {
	return []string{PolicyRandom, PolicyBestFit, allocator.PolicyBinpack, allocator.PolicySpread, allocator.PolicyFGD, PolicyFGDPaper, allocator.PolicyGpuslice, PolicyOffline}
}

// Benchmark runs every policy on every seed. Runs are independent and each
// is deterministic, so the results do not depend on Parallel. They come
// back ordered by policy (as given) then seed.
func Benchmark(ctx context.Context, o Options) ([]*Run, error) {
	return runGrid(o, func(cfg Config) (*Run, error) { return Simulate(ctx, cfg) }, o.Progress)
}

// runGrid runs sim for every policy on every seed of o, o.Parallel at a
// time, and returns the results ordered by policy (as given) then seed.
// progress, when set, is called after each run (serialised).
func runGrid[R any](o Options, sim func(Config) (R, error), progress func(R)) ([]R, error) {
	for _, p := range o.Policies {
		if p == PolicyOffline || p == PolicyFGDPaper {
			continue
		}
		if _, err := NewPolicy(p); err != nil {
			return nil, err
		}
	}
	n := len(o.Policies) * len(o.Seeds)
	runs := make([]R, n)
	errs := make([]error, n)
	par := max(o.Parallel, 1)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				pol, seed := o.Policies[i/len(o.Seeds)], o.Seeds[i%len(o.Seeds)]
				r, err := sim(Config{Nodes: o.Nodes, Pods: o.Pods, Seed: seed, Policy: pol, Target: o.Target, Units: o.Units})
				if err != nil {
					errs[i] = fmt.Errorf("policy %s seed %d: %w", pol, seed, err)
					continue
				}
				runs[i] = r
				if progress != nil {
					mu.Lock()
					progress(r)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return runs, nil
}
