package metricsutil

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCallsCountAndTimeByTheSameLabels(t *testing.T) {
	c := NewCalls("calls_total", "Calls.", "call_duration_seconds", "Call time.", prometheus.DefBuckets, "verb", "result")
	r := NewRegistry(c.Collectors()...)
	c.Observe(2*time.Second, "get", "ok")
	c.Observe(time.Second, "get", "ok")
	if got := promtest.ToFloat64(c.Total.WithLabelValues("get", "ok")); got != 2 {
		t.Errorf("calls = %v, want 2", got)
	}
	if n := promtest.CollectAndCount(c.Duration); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"calls_total", "call_duration_seconds", "go_goroutines"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
}
