// Package metricsutil holds what the extender's and the device plugin's
// metrics share: a fresh registry with the Go and process collectors, the
// handler that serves it, and Calls, the counter and latency histogram of
// one kind of call by the same labels. It registers nothing globally.
package metricsutil

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh registry holding the Go and process
// collectors and cs.
func NewRegistry(cs ...prometheus.Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(cs...)
	return r
}

// Handler serves r in the Prometheus exposition formats.
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{Registry: r})
}

// Calls counts one kind of call and times it, both by the same labels.
type Calls struct {
	Total    *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewCalls returns the counter named total and the histogram named
// duration (with these buckets), each with its help text, by labels.
func NewCalls(total, totalHelp, duration, durationHelp string, buckets []float64, labels ...string) Calls {
	return Calls{
		Total:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: total, Help: totalHelp}, labels),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: duration, Help: durationHelp, Buckets: buckets}, labels),
	}
}

// Collectors returns the two instruments, to register.
func (c Calls) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.Total, c.Duration}
}

// Observe records one call of the label values that took d.
func (c Calls) Observe(d time.Duration, values ...string) {
	c.Total.WithLabelValues(values...).Inc()
	c.Duration.WithLabelValues(values...).Observe(d.Seconds())
}
