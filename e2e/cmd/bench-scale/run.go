package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

var createOpts = metav1.CreateOptions{}

// phase is one timed run of a scheduler setup.
type phase struct {
	Name  string
	Setup harness.SchedulerSetup
	// Extender runs the gpuslice extender (already started) in the phase.
	Extender bool
}

// phaseResult is what a phase measured.
type phaseResult struct {
	Name      string
	Elapsed   time.Duration // first creation to last binding
	PodsPerS  float64
	SchedCPU  float64 // kube-scheduler's CPU seconds in the phase
	ExtCPU    float64 // the extender's CPU seconds in the phase (B only)
	Audit     audit   // B only
	Latencies []verbLatency
	// Decisions is the policy's own time per verb, in process (fitting and
	// scoring every node in filter, choosing the GPUs in bind): what is
	// left of Latencies once HTTP, JSON and waiting for a CPU are taken out.
	Decisions []verbLatency
}

// verbLatency is one verb's latency through HTTP, from the extender's own
// request-duration histogram over the phase.
type verbLatency struct {
	Verb     string
	Count    float64
	P50, P99 time.Duration
}

// bench holds the running cluster and what every phase needs.
type bench struct {
	o       options
	out     io.Writer
	c       *harness.Cluster
	client  kubernetes.Interface
	invs    []*api.Inventory
	gpus    map[string]api.GPU
	scraper *scraper
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.nodes < 1 || o.pods < 1 || o.workers < 1 {
		return fmt.Errorf("-nodes, -pods and -workers must be positive (got %d, %d, %d)", o.nodes, o.pods, o.workers)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(out, "  "+format+"\n", args...) }
	fmt.Fprintf(out, "bench-scale: %d nodes (8x H100 80GB each), %d pods per phase\n", o.nodes, o.pods)
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// ShippedEnv: the extender runs with the Deployment's GOMEMLIMIT, as shipped.
	// ShippedPolicy: unless -policy says otherwise, the manifest's --policy.
	hopts := harness.Options{WithoutScheduler: true, NoSignalHandler: true, Logf: logf, StartTimeout: 3 * time.Minute, ShippedEnv: true, ShippedPolicy: true, Policy: o.policy}
	if o.profileDir != "" {
		hopts.ExtenderArgs = []string{"--profiling"}
	}
	c, err := harness.New(startCtx, hopts)
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer c.Stop()
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.QPS, cfg.Burst = 2000, 2000
	cfg.UserAgent = "gpuslice-bench-scale"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b := &bench{o: o, out: out, c: c, client: client}
	begin := time.Now()
	if b.invs, err = createNodes(ctx, c, o.nodes, o.workers); err != nil {
		return fmt.Errorf("create nodes: %w", err)
	}
	b.gpus = map[string]api.GPU{}
	for _, inv := range b.invs {
		for _, g := range inv.GPUs {
			b.gpus[g.UUID] = g
		}
	}
	fmt.Fprintf(out, "nodes: %d created in %v\n", o.nodes, time.Since(begin).Round(time.Millisecond))
	return b.phases(ctx)
}

// phases runs A, B (and M), A', A0 and prints the summary.
func (b *bench) phases(ctx context.Context) error {
	alone := harness.SchedulerSetup{WithoutExtender: true, WithoutLeaderElection: true}
	withExt := harness.SchedulerSetup{WithoutLeaderElection: true}
	var a phaseResult
	var err error
	if !b.o.skipAlone {
		if a, err = b.phase(ctx, phase{Name: "A", Setup: alone}); err != nil {
			return err
		}
	}
	if err := b.c.StartExtender(ctx); err != nil {
		return fmt.Errorf("start extender: %w", err)
	}
	if b.scraper, err = newScraper(b.c); err != nil {
		return err
	}
	pid := b.c.Pids()[harness.Extender]
	if idle, err := readProc(pid); err == nil {
		lim, _ := procEnv(pid, "GOMEMLIMIT")
		fmt.Fprintf(b.out, "extender ready with %d nodes and no pods: RSS %.0f MiB (GOMEMLIMIT=%q, from %s; policy %s)\n", b.o.nodes, idle.RSSMiB, lim, harness.ShippedDeployment, policyNote(b.c.ExtenderPolicy(), b.o.policy))
	}
	ext, err := b.phase(ctx, phase{Name: "B", Setup: withExt, Extender: true})
	if err != nil {
		return err
	}
	if b.o.memoryPods > 0 {
		if err := b.memoryPhase(ctx); err != nil {
			return err
		}
	}
	extPid := b.c.Pids()[harness.Extender]
	extStats, err := readProc(extPid)
	if err != nil {
		return err
	}
	if err := b.c.StopExtender(); err != nil {
		return err
	}
	if b.o.skipAlone {
		b.report([]phaseResult{ext}, extStats)
		return ext.Audit.err()
	}
	a2, err := b.phase(ctx, phase{Name: "A'", Setup: alone})
	if err != nil {
		return err
	}
	results := []phaseResult{a, ext, a2}
	if !b.o.skipA0 {
		dflt := alone
		dflt.DefaultPercentageOfNodesToScore = true
		a0, err := b.phase(ctx, phase{Name: "A0", Setup: dflt})
		if err != nil {
			return err
		}
		results = append(results, a0)
	}
	b.report(results, extStats)
	return ext.Audit.err()
}

// phase runs one phase: a fresh namespace, kube-scheduler with p.Setup, the
// pods created concurrently, timed to the last binding; then kube-scheduler
// stops and the pods are deleted.
func (b *bench) phase(ctx context.Context, p phase) (phaseResult, error) {
	r := phaseResult{Name: p.Name}
	ns := "bench-" + strings.ToLower(strings.ReplaceAll(p.Name, "'", "2"))
	if err := createNamespace(ctx, b.client, ns); err != nil {
		return r, err
	}
	if err := b.c.StartScheduler(ctx, p.Setup); err != nil {
		return r, fmt.Errorf("phase %s: start kube-scheduler: %w", p.Name, err)
	}
	w, err := watchBindings(ctx, b.client, ns, b.o.pods)
	if err != nil {
		return r, err
	}
	defer w.stop()
	var before map[string]*dto.MetricFamily
	var ext0 procStats
	if p.Extender {
		if before, err = b.scraper.scrape(ctx); err != nil {
			return r, err
		}
		if ext0, err = readProc(b.c.Pids()[harness.Extender]); err != nil {
			return r, err
		}
	}
	sched0, err := readProc(b.c.Pids()[harness.KubeScheduler])
	if err != nil {
		return r, err
	}
	profiled := make(chan error, 1)
	if p.Extender && b.o.profileDir != "" {
		go func() {
			profiled <- b.scraper.save(ctx, "debug/pprof/profile?seconds=30", filepath.Join(b.o.profileDir, "extender-cpu.pprof"))
		}()
	} else {
		profiled <- nil
	}
	start := time.Now()
	err = parallel(ctx, b.o.pods, b.o.workers, func(ctx context.Context, i int) error {
		if _, err := b.client.CoreV1().Pods(ns).Create(ctx, benchPod(i), createOpts); err != nil {
			return fmt.Errorf("create pod %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("phase %s: %w", p.Name, err)
	}
	created := time.Since(start)
	last, err := w.wait(ctx, b.o.timeout)
	if err != nil {
		return r, fmt.Errorf("phase %s: %w", p.Name, err)
	}
	r.Elapsed = last.Sub(start)
	r.PodsPerS = float64(b.o.pods) / r.Elapsed.Seconds()
	sched1, err := readProc(b.c.Pids()[harness.KubeScheduler])
	if err != nil {
		return r, err
	}
	r.SchedCPU = sched1.CPUSeconds - sched0.CPUSeconds
	if p.Extender {
		after, err := b.scraper.scrape(ctx)
		if err != nil {
			return r, err
		}
		r.Latencies = latencies(before, after)
		r.Decisions = decisions(before, after)
		ext1, err := readProc(b.c.Pids()[harness.Extender])
		if err != nil {
			return r, err
		}
		r.ExtCPU = ext1.CPUSeconds - ext0.CPUSeconds
		if r.Audit, err = auditPlacements(ctx, b.client, ns, b.gpus); err != nil {
			return r, err
		}
		if b.o.profileDir != "" {
			if err := errors.Join(<-profiled, b.scraper.save(ctx, "debug/pprof/heap", filepath.Join(b.o.profileDir, "extender-heap.pprof"))); err != nil {
				return r, err
			}
		}
	}
	fmt.Fprintf(b.out, "phase %-2s %-58s %6d pods created in %6.1fs, all bound after %7.1fs: %7.1f pods/s (kube-scheduler %.0f CPU s)\n",
		p.Name, describe(p), b.o.pods, created.Seconds(), r.Elapsed.Seconds(), r.PodsPerS, r.SchedCPU)
	if err := b.c.StopScheduler(); err != nil {
		return r, err
	}
	if err := deletePods(ctx, b.client, ns); err != nil {
		return r, err
	}
	return r, nil
}

func describe(p phase) string {
	s := "kube-scheduler alone"
	if p.Extender {
		s = "kube-scheduler + gpuslice extender"
	}
	if p.Setup.DefaultPercentageOfNodesToScore {
		return s + ", default percentageOfNodesToScore"
	}
	return s + ", percentageOfNodesToScore 100"
}

// memoryPhase fills the extender's cache with placed pods and reads its
// memory; the pods are deleted afterwards.
func (b *bench) memoryPhase(ctx context.Context) error {
	const ns = "bench-m"
	if err := createNamespace(ctx, b.client, ns); err != nil {
		return err
	}
	begin := time.Now()
	if err := createPlacedPods(ctx, b.c, b.client, ns, b.o.memoryPods, b.o.workers, b.invs); err != nil {
		return fmt.Errorf("phase M: %w", err)
	}
	if err := waitCachePods(ctx, b.scraper, b.o.memoryPods, 10*time.Minute); err != nil {
		return fmt.Errorf("phase M: %w", err)
	}
	s, err := readProc(b.c.Pids()[harness.Extender])
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "phase M  extender with %d nodes and %d placed pods in its cache (after %.0fs): RSS %.0f MiB, peak RSS so far %.0f MiB\n",
		b.o.nodes, b.o.memoryPods, time.Since(begin).Seconds(), s.RSSMiB, s.PeakRSSMiB)
	return deletePods(ctx, b.client, ns)
}

// report prints the summary and the RESULT line.
func (b *bench) report(rs []phaseResult, ext procStats) {
	byName := map[string]phaseResult{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	a, ext2, a2 := byName["A"], byName["B"], byName["A'"]
	base := (a.PodsPerS + a2.PodsPerS) / 2
	fmt.Fprintf(b.out, "\nratio B/A = %.3f, B/A' = %.3f, B/mean(A,A') = %.3f\n", ext2.PodsPerS/a.PodsPerS, ext2.PodsPerS/a2.PodsPerS, ext2.PodsPerS/base)
	if a0, ok := byName["A0"]; ok {
		fmt.Fprintf(b.out, "kube-scheduler's default percentageOfNodesToScore: %.1f pods/s, %.2fx the 100%% setting (mean of A and A')\n", a0.PodsPerS, a0.PodsPerS/base)
	}
	fmt.Fprintf(b.out, "extender latency through HTTP in phase B (its request-duration histogram, interpolated):\n")
	for _, l := range ext2.Latencies {
		fmt.Fprintf(b.out, "  %-10s %6.0f calls  p50 %-8s p99 %s\n", l.Verb, l.Count, fmtDur(l.P50), fmtDur(l.P99))
	}
	fmt.Fprintf(b.out, "policy decision in process in phase B (its policy-decision histogram, interpolated):\n")
	for _, l := range ext2.Decisions {
		fmt.Fprintf(b.out, "  %-10s %6.0f calls  p50 %-8s p99 %s\n", l.Verb, l.Count, fmtDur(l.P50), fmtDur(l.P99))
	}
	fmt.Fprintf(b.out, "extender: %.0f CPU s in phase B (%.2f ms per pod), peak RSS %.0f MiB; kube-scheduler CPU s: A %.0f, B %.0f, A' %.0f\n",
		ext2.ExtCPU, 1000*ext2.ExtCPU/float64(b.o.pods), ext.PeakRSSMiB, a.SchedCPU, ext2.SchedCPU, a2.SchedCPU)
	fmt.Fprintf(b.out, "audit of phase B: %d GPUs over-committed, %d bound pods without a valid placement\n", ext2.Audit.Overcommitted, ext2.Audit.Unplaced)
	fmt.Fprintf(b.out, "RESULT nodes=%d pods=%d baseline_pods_per_s=%.1f extender_pods_per_s=%.1f ratio=%.3f overcommitted=%d extender_peak_rss_mib=%.0f\n",
		b.o.nodes, b.o.pods, base, ext2.PodsPerS, ext2.PodsPerS/base, ext2.Audit.Overcommitted, ext.PeakRSSMiB)
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	if d == time.Duration(math.MaxInt64) {
		return "> largest bucket"
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// latencies is each verb's p50 and p99 over the phase (calls that answered
// ok).
func latencies(before, after map[string]*dto.MetricFamily) []verbLatency {
	return quantiles(before, after, metrics.RequestDuration, []string{"filter", "prioritize", "bind", "preempt"}, map[string]string{"result": metrics.ResultOK})
}

// decisions is the policy decision's p50 and p99 per verb over the phase,
// summed over policies.
func decisions(before, after map[string]*dto.MetricFamily) []verbLatency {
	return quantiles(before, after, metrics.PolicyDecision, []string{"filter", "bind"}, nil)
}

// quantiles reads family name's histogram per verb (with the other labels
// given) between two scrapes; verbs without observations are left out.
func quantiles(before, after map[string]*dto.MetricFamily, name string, verbs []string, labels map[string]string) []verbLatency {
	var out []verbLatency
	for _, verb := range verbs {
		l := map[string]string{"verb": verb}
		for k, v := range labels {
			l[k] = v
		}
		h := histogramOf(after, name, l).minus(histogramOf(before, name, l))
		if h.count == 0 {
			continue
		}
		out = append(out, verbLatency{Verb: verb, Count: h.count, P50: seconds(h.quantile(0.5)), P99: seconds(h.quantile(0.99))})
	}
	return out
}

func seconds(s float64) time.Duration {
	switch {
	case math.IsNaN(s):
		return -1
	case math.IsInf(s, 1):
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// scraper reads the extender's /metrics over mutual TLS, as kube-scheduler
// would connect.
type scraper struct {
	client *http.Client
	url    string
}

func newScraper(c *harness.Cluster) (*scraper, error) {
	cert, err := c.ExtenderTLS.SchedulerCert()
	if err != nil {
		return nil, err
	}
	return &scraper{client: c.ExtenderTLS.HTTPClient(cert), url: c.ExtenderURL + "metrics"}, nil
}

// save writes what GET path answers to file.
func (s *scraper) save(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.url, "metrics")+path, nil)
	if err != nil {
		return err
	}
	long := *s.client
	long.Timeout = 2 * time.Minute // a CPU profile takes its seconds
	resp, err := long.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

func (s *scraper) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	if s == nil {
		return nil, errors.New("no extender to scrape")
	}
	return harness.Scrape(ctx, s.client, s.url)
}

// policyNote names the extender's policy and where it came from.
func policyNote(running, flag string) string {
	if flag == "" {
		return running + ", as shipped"
	}
	return running + ", from -policy"
}
