package main

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		h    histogram
		q    float64
		want float64
	}{
		{name: "empty", h: histogram{}, q: 0.5, want: math.NaN()},
		// 10 observations <= 1, 10 more in (1, 2]: the median is the top
		// of the first bucket, p75 halfway through the second.
		{name: "median", h: histogram{bounds: []float64{1, 2, inf}, counts: []float64{10, 20, 20}, count: 20}, q: 0.5, want: 1},
		{name: "p75", h: histogram{bounds: []float64{1, 2, inf}, counts: []float64{10, 20, 20}, count: 20}, q: 0.75, want: 1.5},
		{name: "first bucket from zero", h: histogram{bounds: []float64{4, 8}, counts: []float64{4, 4}, count: 4}, q: 0.5, want: 2},
		{name: "above the largest bound", h: histogram{bounds: []float64{1, inf}, counts: []float64{1, 10}, count: 10}, q: 0.99, want: inf},
	}
	for _, tc := range tests {
		got := tc.h.quantile(tc.q)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: quantile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// The phase's histogram is the scrape after minus the scrape before, per
// verb and result.
func TestLatenciesFromScrapes(t *testing.T) {
	parse := func(s string) histogram {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mf, err := p.TextToMetricFamilies(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return histogramOf(mf, "d", map[string]string{"verb": "filter", "result": "ok"})
	}
	const format = `# TYPE d histogram
d_bucket{verb="filter",result="ok",le="0.001"} %d
d_bucket{verb="filter",result="ok",le="0.002"} %d
d_bucket{verb="filter",result="ok",le="+Inf"} %d
d_sum{verb="filter",result="ok"} 1
d_count{verb="filter",result="ok"} %d
d_bucket{verb="filter",result="error",le="0.001"} 0
d_bucket{verb="filter",result="error",le="0.002"} 0
d_bucket{verb="filter",result="error",le="+Inf"} 100
d_sum{verb="filter",result="error"} 1
d_count{verb="filter",result="error"} 100
`
	before := parse(strings.NewReplacer("%d", "5").Replace(format))
	after := parse(strings.Join([]string{
		"# TYPE d histogram",
		`d_bucket{verb="filter",result="ok",le="0.001"} 5`,
		`d_bucket{verb="filter",result="ok",le="0.002"} 15`,
		`d_bucket{verb="filter",result="ok",le="+Inf"} 15`,
		`d_sum{verb="filter",result="ok"} 1`,
		`d_count{verb="filter",result="ok"} 15`,
		"",
	}, "\n"))
	h := after.minus(before)
	if h.count != 10 {
		t.Fatalf("count = %v, want 10 (the error series must not count)", h.count)
	}
	if got := h.quantile(0.5); math.Abs(got-0.0015) > 1e-12 {
		t.Errorf("median = %v, want 0.0015 (all ten new calls in (1ms, 2ms])", got)
	}
}

// Series that match the labels are summed (the policy-decision histogram
// has one series per policy); a series with other buckets is skipped.
func TestHistogramSumsSeries(t *testing.T) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(`# TYPE d histogram
d_bucket{policy="binpack",verb="filter",le="0.001"} 3
d_bucket{policy="binpack",verb="filter",le="+Inf"} 4
d_sum{policy="binpack",verb="filter"} 1
d_count{policy="binpack",verb="filter"} 4
d_bucket{policy="fgd",verb="filter",le="0.001"} 1
d_bucket{policy="fgd",verb="filter",le="+Inf"} 6
d_sum{policy="fgd",verb="filter"} 1
d_count{policy="fgd",verb="filter"} 6
d_bucket{policy="fgd",verb="bind",le="0.001"} 100
d_bucket{policy="fgd",verb="bind",le="+Inf"} 100
d_sum{policy="fgd",verb="bind"} 1
d_count{policy="fgd",verb="bind"} 100
`))
	if err != nil {
		t.Fatal(err)
	}
	got := histogramOf(mf, "d", map[string]string{"verb": "filter"})
	want := histogram{bounds: []float64{0.001, math.Inf(1)}, counts: []float64{4, 10}, count: 10}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(histogram{})); diff != "" {
		t.Errorf("histogramOf(verb=filter) (-want +got):\n%s", diff)
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PeakRSSMiB <= 0 || s.RSSMiB <= 0 || s.PeakRSSMiB < s.RSSMiB || s.CPUSeconds < 0 {
		t.Errorf("readProc(self) = %+v: want positive RSS, peak >= current, CPU >= 0", s)
	}
}

// TestProcEnvSelf reads this process's own start-up environment.
func TestProcEnvSelf(t *testing.T) {
	got, err := procEnv(os.Getpid(), "PATH")
	if err != nil {
		t.Fatal(err)
	}
	if got == "" || got != os.Getenv("PATH") {
		t.Errorf("procEnv(self, PATH) = %q, want %q", got, os.Getenv("PATH"))
	}
	if got, err := procEnv(os.Getpid(), "GPUSLICE_SURELY_UNSET_VARIABLE"); err != nil || got != "" {
		t.Errorf("unset variable: %q, %v", got, err)
	}
}
