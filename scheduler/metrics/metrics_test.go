package metrics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRequestBucketsResolveTheFilterTarget: the request histogram tells a
// 4.6 ms filter from a 5.4 ms one (the 5 ms target lies on a bound), and
// its bounds increase.
func TestRequestBucketsResolveTheFilterTarget(t *testing.T) {
	b := RequestBuckets()
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("bounds not increasing at %d: %v", i, b)
		}
	}
	m := New(Source{})
	for _, d := range []time.Duration{4600 * time.Microsecond, 4900 * time.Microsecond, 5400 * time.Microsecond, 800 * time.Microsecond} {
		m.ObserveRequest("filter", ResultOK, d)
	}
	var out dto.Metric
	if err := m.requests.Duration.WithLabelValues("filter", ResultOK).(prometheus.Histogram).Write(&out); err != nil {
		t.Fatal(err)
	}
	got := map[float64]uint64{}
	for _, bk := range out.GetHistogram().GetBucket() {
		switch bk.GetUpperBound() {
		case 0.001, 0.0045, 0.005, 0.0075:
			got[bk.GetUpperBound()] = bk.GetCumulativeCount()
		}
	}
	want := map[float64]uint64{0.001: 1, 0.0045: 1, 0.005: 3, 0.0075: 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cumulative counts by bound (-want +got):\n%s", diff)
	}
}
