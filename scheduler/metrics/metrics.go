// Package metrics owns the extender's Prometheus metrics: the instruments
// the verbs update (requests, binds, policy decisions), and a collector
// that reads the cache and the readiness gate at scrape time (cache size,
// readiness, per-GPU allocation, fragmentation). Every Metrics has its own
// registry; nothing is registered globally.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/metricsutil"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Metric names, for tests and the dashboard check.
const (
	RequestsTotal         = "gpuslice_extender_requests_total"
	RequestDuration       = "gpuslice_extender_request_duration_seconds"
	BindsTotal            = "gpuslice_extender_binds_total"
	BindConflictsTotal    = "gpuslice_extender_bind_conflicts_total"
	AmbiguousBindsTotal   = "gpuslice_extender_ambiguous_binds_total"
	PolicyDecision        = "gpuslice_extender_policy_decision_duration_seconds"
	UnplaceableTotal      = "gpuslice_extender_unplaceable_pods_total"
	Ready                 = "gpuslice_extender_ready"
	CacheNodes            = "gpuslice_extender_cache_nodes"
	CachePods             = "gpuslice_extender_cache_pods"
	GPUs                  = "gpuslice_extender_gpus"
	Fragmentation         = "gpuslice_extender_fragmentation_gpus"
	GPUAllocatedSlices    = "gpuslice_extender_gpu_allocated_slices"
	GPUCapacitySlices     = "gpuslice_extender_gpu_capacity_slices"
	GPUAllocatedCoreUnits = "gpuslice_extender_gpu_allocated_core_units"
	GPUCapacityCoreUnits  = "gpuslice_extender_gpu_capacity_core_units"
	GPUAllocatedSlots     = "gpuslice_extender_gpu_allocated_slots"
	GPUCapacitySlots      = "gpuslice_extender_gpu_capacity_slots"
)

// Request results (label result of the request metrics).
const (
	ResultOK           = "ok"
	ResultError        = "error"
	ResultBadRequest   = "bad_request"
	ResultNotReady     = "not_ready"
	ResultUnauthorized = "unauthorized"
	ResultThrottled    = "throttled"
)

// Bind results (label result of gpuslice_extender_binds_total).
const (
	BindBound   = "bound"
	BindRefused = "refused" // not filtered by this process, already bound, no longer fits
	BindFailed  = "failed"  // the Binding failed at the API server
)

// Cache is what the collector reads of the extender's cache.
type Cache interface {
	Counts() cache.Counts
	VisitNodes(fn func(n *allocator.Node))
}

// Source is what the scrape-time collector reads.
type Source struct {
	Cache Cache
	// Ready reports whether the verbs are answered (the readiness gate).
	Ready func() bool
	// Policies are the distinct policies in use, each measured under its
	// own name (gpuslice_extender_fragmentation_gpus{policy}).
	Policies []allocator.Policy
	// UnplaceableReasons are the reasons gpuslice_extender_unplaceable_pods_total
	// starts with at zero.
	UnplaceableReasons []string
}

// Metrics are the extender's instruments and their registry. A nil
// *Metrics records nothing, so the verbs need no check.
type Metrics struct {
	registry    *prometheus.Registry
	requests    metricsutil.Calls
	binds       *prometheus.CounterVec
	conflicts   prometheus.Counter
	ambiguous   prometheus.Counter
	decision    *prometheus.HistogramVec
	unplaceable *prometheus.CounterVec
}

// RequestBuckets are the request-duration histogram's bounds in seconds:
// 0.25 ms steps up to 2 ms, 0.5 ms steps up to 5 ms (the filter's latency
// target), then roughly doubling to 10 s, so that a p99 near a few
// milliseconds is read within a quarter or half of a millisecond rather
// than within a factor of two.
func RequestBuckets() []float64 {
	return []float64{
		0.00025, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002,
		0.0025, 0.003, 0.0035, 0.004, 0.0045, 0.005,
		0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	}
}

// New returns the extender's metrics on a fresh registry, with the Go and
// process collectors and the scrape-time collector of src.
func New(src Source) *Metrics {
	m := &Metrics{
		requests: metricsutil.NewCalls(RequestsTotal, "Extender HTTP requests by verb (filter, prioritize, preempt, bind) and result.",
			RequestDuration, "Time to answer an extender request, by verb and result.", RequestBuckets(), "verb", "result"),
		binds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: BindsTotal, Help: "Binds by result: bound, refused (not this process's filter, already bound, no longer fits) or failed (the Binding failed at the API server).",
		}, []string{"result"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: BindConflictsTotal, Help: "Binds whose chosen GPU shares a concurrent bind took first (the bind chose again).",
		}),
		ambiguous: prometheus.NewCounter(prometheus.CounterOpts{
			Name: AmbiguousBindsTotal, Help: "Failed Bindings that may still have bound the pod; their shares stay reserved until the informer or the reservation TTL decides.",
		}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: PolicyDecision, Help: "Time the placement policy took to decide: fitting and scoring every candidate node (filter) or choosing the GPUs on one node (bind).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}, []string{"policy", "verb"}),
		unplaceable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: UnplaceableTotal, Help: "Filter calls that left a GPU pod no feasible node, by the first blocker on most nodes (event reason).",
		}, []string{"reason"}),
	}
	// Known label values start at zero, so that rates and alerts see a
	// series before its first event.
	for _, verb := range []string{"filter", "prioritize", "preempt", "bind"} {
		for _, r := range []string{ResultOK, ResultError, ResultBadRequest, ResultNotReady, ResultUnauthorized, ResultThrottled} {
			m.requests.Total.WithLabelValues(verb, r)
		}
	}
	for _, r := range []string{BindBound, BindRefused, BindFailed} {
		m.binds.WithLabelValues(r)
	}
	for _, p := range src.Policies {
		m.decision.WithLabelValues(p.Name(), "filter")
		m.decision.WithLabelValues(p.Name(), "bind")
	}
	for _, r := range src.UnplaceableReasons {
		m.unplaceable.WithLabelValues(r)
	}
	m.registry = metricsutil.NewRegistry(append(m.requests.Collectors(), m.binds, m.conflicts, m.ambiguous, m.decision, m.unplaceable,
		newStateCollector(src))...)
	return m
}

// Registry returns the registry (for tests and for serving).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return metricsutil.Handler(m.registry) }

// ObserveRequest records one answered request.
func (m *Metrics) ObserveRequest(verb, result string, d time.Duration) {
	if m != nil {
		m.requests.Observe(d, verb, result)
	}
}

// Bind records the outcome of one bind.
func (m *Metrics) Bind(result string) {
	if m != nil {
		m.binds.WithLabelValues(result).Inc()
	}
}

// BindConflict records a bind whose choice a concurrent bind took.
func (m *Metrics) BindConflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

// AmbiguousBind records a failed Binding that may have bound the pod.
func (m *Metrics) AmbiguousBind() {
	if m != nil {
		m.ambiguous.Inc()
	}
}

// ObserveDecision records how long policy took to decide in verb.
func (m *Metrics) ObserveDecision(policy, verb string, d time.Duration) {
	if m != nil {
		m.decision.WithLabelValues(policy, verb).Observe(d.Seconds())
	}
}

// Unplaceable records a filter that found no node for a GPU pod.
func (m *Metrics) Unplaceable(reason string) {
	if m != nil {
		m.unplaceable.WithLabelValues(reason).Inc()
	}
}

// stateCollector reads the cache and the gate at scrape time, so no series
// outlives the node or GPU it describes.
type stateCollector struct {
	src                                        Source
	ready, nodes, pods, gpus, frag             *prometheus.Desc
	allocSlices, capSlices, allocCore, capCore *prometheus.Desc
	allocSlots, capSlots                       *prometheus.Desc
}

func newStateCollector(src Source) *stateCollector {
	gpu := []string{"node", "gpu", "uuid", "model"}
	return &stateCollector{
		src:         src,
		ready:       prometheus.NewDesc(Ready, "1 when the extender answers the verbs (informers synced, cache built, leader when electing), else 0.", nil, nil),
		nodes:       prometheus.NewDesc(CacheNodes, "Nodes in the extender's cache, by state: usable (a valid GPU inventory) or unusable (none, unreadable, another slice size).", []string{"state"}, nil),
		pods:        prometheus.NewDesc(CachePods, "GPU pods holding shares in the extender's cache, by state: assumed (binding, not yet seen bound), confirmed, retired (moved shares in their grace period).", []string{"state"}, nil),
		gpus:        prometheus.NewDesc(GPUs, "GPUs of usable nodes by state: free (nothing allocated), partial, full (no gpu-mem slice free), unhealthy.", []string{"state"}, nil),
		frag:        prometheus.NewDesc(Fragmentation, "The fragmentation measure of each policy in use, summed over the usable nodes, in GPUs (fgd, gpuslice: expected fragmentation of the learned workload; binpack, spread: free share of partly used GPUs).", []string{"policy"}, nil),
		allocSlices: prometheus.NewDesc(GPUAllocatedSlices, "gpu-mem slices charged on a GPU of a node's inventory (assumed, confirmed and retired shares).", gpu, nil),
		capSlices:   prometheus.NewDesc(GPUCapacitySlices, "gpu-mem slices a GPU offers.", gpu, nil),
		allocCore:   prometheus.NewDesc(GPUAllocatedCoreUnits, "gpu-core units (percent of the GPU) charged on a GPU.", gpu, nil),
		capCore:     prometheus.NewDesc(GPUCapacityCoreUnits, "gpu-core units a GPU offers (100).", gpu, nil),
		allocSlots:  prometheus.NewDesc(GPUAllocatedSlots, "Sharing slots charged on a GPU.", gpu, nil),
		capSlots:    prometheus.NewDesc(GPUCapacitySlots, "Sharing slots a GPU offers.", gpu, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.nodes, c.pods, c.gpus, c.frag, c.allocSlices, c.capSlices, c.allocCore, c.capCore, c.allocSlots, c.capSlots} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ready := 0.0
	if c.src.Ready != nil && c.src.Ready() {
		ready = 1
	}
	gauge(c.ready, ready)
	if c.src.Cache == nil {
		return
	}
	n := c.src.Cache.Counts()
	gauge(c.nodes, float64(n.Nodes), "usable")
	gauge(c.nodes, float64(n.Unusable), "unusable")
	gauge(c.pods, float64(n.Assumed), "assumed")
	gauge(c.pods, float64(n.Confirmed), "confirmed")
	gauge(c.pods, float64(n.Retired), "retired")
	frag := make([]float64, len(c.src.Policies))
	var free, partial, full, unhealthy int
	c.src.Cache.VisitNodes(func(node *allocator.Node) {
		for i, p := range c.src.Policies {
			frag[i] += allocator.Fragmentation(p, node)
		}
		for i := range node.Devices {
			d := &node.Devices[i]
			if d.Placeholder {
				// A GPU gone from the inventory, kept for the shares pods
				// hold on it: not a GPU one can allocate on.
				continue
			}
			used := node.Used[i]
			l := []string{node.Name, strconv.Itoa(d.Index), d.UUID, d.Model}
			gauge(c.allocSlices, float64(used.Slices), l...)
			gauge(c.capSlices, float64(d.Capacity.Slices), l...)
			gauge(c.allocCore, float64(used.Core), l...)
			gauge(c.capCore, float64(d.Capacity.Core), l...)
			gauge(c.allocSlots, float64(used.Slots), l...)
			gauge(c.capSlots, float64(d.Capacity.Slots), l...)
			switch {
			case !d.Healthy:
				unhealthy++
			case used.Slices == 0 && used.Core == 0 && used.Slots == 0:
				free++
			case node.Free(i).Slices <= 0:
				full++
			default:
				partial++
			}
		}
	})
	gauge(c.gpus, float64(free), "free")
	gauge(c.gpus, float64(partial), "partial")
	gauge(c.gpus, float64(full), "full")
	gauge(c.gpus, float64(unhealthy), "unhealthy")
	for i, p := range c.src.Policies {
		gauge(c.frag, frag[i], p.Name())
	}
}

// RequestsCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) RequestsCounter() *prometheus.CounterVec { return m.requests.Total }

// BindsCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) BindsCounter() *prometheus.CounterVec { return m.binds }

// DecisionHistogram exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) DecisionHistogram() *prometheus.HistogramVec { return m.decision }

// UnplaceableCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) UnplaceableCounter() *prometheus.CounterVec { return m.unplaceable }
