// Package metrics owns the device plugin's Prometheus metrics: the
// instruments kubelet's calls and the reconcile update (count, latency,
// result), and a collector that reads the served GPUs at scrape time
// (health, MPS daemon state, NVML memory used). Every Metrics has its own
// registry; nothing is registered globally.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuslice/gpuslice/internal/metricsutil"
)

// Metric names, for tests and the dashboard check.
const (
	AllocateTotal     = "gpuslice_device_plugin_allocate_requests_total"
	AllocateDuration  = "gpuslice_device_plugin_allocate_duration_seconds"
	PreferredTotal    = "gpuslice_device_plugin_preferred_allocation_requests_total"
	PreferredDuration = "gpuslice_device_plugin_preferred_allocation_duration_seconds"
	PreStartTotal     = "gpuslice_device_plugin_prestart_requests_total"
	PreStartDuration  = "gpuslice_device_plugin_prestart_duration_seconds"
	ReconcilesTotal   = "gpuslice_device_plugin_reconciles_total"
	ReconcileDuration = "gpuslice_device_plugin_reconcile_duration_seconds"
	GPUHealthy        = "gpuslice_device_plugin_gpu_healthy"
	MPSDaemonHealthy  = "gpuslice_device_plugin_mps_daemon_healthy"
	MemoryUsedBytes   = "gpuslice_device_plugin_gpu_memory_used_bytes"
	MemoryTotalBytes  = "gpuslice_device_plugin_gpu_memory_total_bytes"
)

// Results (label result).
const (
	ResultOK      = "ok"
	ResultRefused = "refused" // Allocate or PreStart answered an error
	ResultError   = "error"   // a reconcile pass failed
)

// GPU is one served GPU as the collector reports it.
type GPU struct {
	Index   int
	UUID    string
	Model   string
	Healthy bool
}

// Source is what the scrape-time collector reads; any func may be nil.
type Source struct {
	// GPUs returns the served GPUs (nil before discovery).
	GPUs func() []GPU
	// MPSDaemon reports whether the GPU's MPS control daemon is healthy;
	// ok is false when the GPU has no daemon (isolation is not mps).
	MPSDaemon func(uuid string) (healthy, ok bool)
	// Memory returns NVML's used and total memory of the GPU in bytes;
	// ok is false when NVML did not answer.
	Memory func(uuid string) (used, total uint64, ok bool)
}

// Metrics are the device plugin's instruments and their registry. A nil
// *Metrics records nothing.
type Metrics struct {
	registry  *prometheus.Registry
	allocate  metricsutil.Calls
	preferred metricsutil.Calls
	prestart  metricsutil.Calls
	reconcile metricsutil.Calls
	src       atomic.Pointer[Source]
}

var callBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

// New returns the device plugin's metrics on a fresh registry, with the Go
// and process collectors; SetSource tells the collector what to read.
func New() *Metrics {
	m := &Metrics{
		allocate: metricsutil.NewCalls(AllocateTotal, "kubelet Allocate calls by resource (gpu-mem, gpu-core, gpu-count) and result (ok, refused).",
			AllocateDuration, "Time to answer one container's Allocate, by resource and result.", callBuckets, "resource", "result"),
		preferred: metricsutil.NewCalls(PreferredTotal, "kubelet GetPreferredAllocation calls by resource and result (ok, refused: a pod that bypassed the extender is refused here first).",
			PreferredDuration, "Time to answer one container's GetPreferredAllocation, by resource and result.", callBuckets, "resource", "result"),
		prestart: metricsutil.NewCalls(PreStartTotal, "kubelet PreStartContainer calls by result (ok, refused).",
			PreStartDuration, "Time to answer PreStartContainer, by result.", callBuckets, "result"),
		reconcile: metricsutil.NewCalls(ReconcilesTotal, "Reconcile passes (pod-resources against placements and allocation records) by result (ok, error).",
			ReconcileDuration, "Time of one reconcile pass, by result.", prometheus.ExponentialBuckets(0.001, 2, 14), "result"),
	}
	// Known label values start at zero.
	for _, res := range []string{"gpuslice.io/gpu-mem", "gpuslice.io/gpu-core", "gpuslice.io/gpu-count"} {
		for _, r := range []string{ResultOK, ResultRefused} {
			m.allocate.Total.WithLabelValues(res, r)
			m.preferred.Total.WithLabelValues(res, r)
		}
	}
	for _, r := range []string{ResultOK, ResultRefused} {
		m.prestart.Total.WithLabelValues(r)
	}
	for _, r := range []string{ResultOK, ResultError} {
		m.reconcile.Total.WithLabelValues(r)
	}
	cs := []prometheus.Collector{newGPUCollector(m)}
	for _, c := range []metricsutil.Calls{m.allocate, m.preferred, m.prestart, m.reconcile} {
		cs = append(cs, c.Collectors()...)
	}
	m.registry = metricsutil.NewRegistry(cs...)
	return m
}

// SetSource sets what the collector reads (the plugin calls it once its
// GPUs are discovered).
func (m *Metrics) SetSource(src Source) {
	if m != nil {
		m.src.Store(&src)
	}
}

// Registry returns the registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return metricsutil.Handler(m.registry) }

func result(err error, failed string) string {
	if err != nil {
		return failed
	}
	return ResultOK
}

// Allocate records one container's Allocate of resource.
func (m *Metrics) Allocate(resource string, d time.Duration, err error) {
	if m != nil {
		m.allocate.Observe(d, resource, result(err, ResultRefused))
	}
}

// Preferred records one container's GetPreferredAllocation of resource.
func (m *Metrics) Preferred(resource string, d time.Duration, err error) {
	if m != nil {
		m.preferred.Observe(d, resource, result(err, ResultRefused))
	}
}

// PreStart records one PreStartContainer.
func (m *Metrics) PreStart(d time.Duration, err error) {
	if m != nil {
		m.prestart.Observe(d, result(err, ResultRefused))
	}
}

// Reconcile records one reconcile pass.
func (m *Metrics) Reconcile(d time.Duration, err error) {
	if m != nil {
		m.reconcile.Observe(d, result(err, ResultError))
	}
}

// AllocateCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) AllocateCounter() *prometheus.CounterVec { return m.allocate.Total }

// PreferredCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) PreferredCounter() *prometheus.CounterVec { return m.preferred.Total }

// PreStartCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) PreStartCounter() *prometheus.CounterVec { return m.prestart.Total }

// ReconcileCounter exposes an instrument to tests (prometheus/testutil).
func (m *Metrics) ReconcileCounter() *prometheus.CounterVec { return m.reconcile.Total }

// gpuCollector reads the served GPUs at scrape time.
type gpuCollector struct {
	m                          *Metrics
	healthy, mps, used, totalB *prometheus.Desc
}

func newGPUCollector(m *Metrics) *gpuCollector {
	l := []string{"gpu", "uuid", "model"}
	return &gpuCollector{
		m:       m,
		healthy: prometheus.NewDesc(GPUHealthy, "1 while the GPU is healthy (NVML health and its isolator), else 0; an unhealthy GPU takes no new pods.", l, nil),
		mps:     prometheus.NewDesc(MPSDaemonHealthy, "1 while the GPU's MPS control daemon answers its probe, else 0 (isolation mps only).", l, nil),
		used:    prometheus.NewDesc(MemoryUsedBytes, "GPU memory in use as NVML reports it, to compare with the allocated slices.", l, nil),
		totalB:  prometheus.NewDesc(MemoryTotalBytes, "GPU memory as NVML reports it.", l, nil),
	}
}

func (c *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.mps
	ch <- c.used
	ch <- c.totalB
}

func (c *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.src.Load()
	if src == nil || src.GPUs == nil {
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, g := range src.GPUs() {
		l := []string{strconv.Itoa(g.Index), g.UUID, g.Model}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, b(g.Healthy), l...)
		if src.MPSDaemon != nil {
			if ok, has := src.MPSDaemon(g.UUID); has {
				ch <- prometheus.MustNewConstMetric(c.mps, prometheus.GaugeValue, b(ok), l...)
			}
		}
		if src.Memory != nil {
			if used, total, ok := src.Memory(g.UUID); ok {
				ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(used), l...)
				ch <- prometheus.MustNewConstMetric(c.totalB, prometheus.GaugeValue, float64(total), l...)
			}
		}
	}
}
