package extender

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// observed is an extender with metrics and a fake event recorder, served
// through its HTTP handler.
type observed struct {
	ext   *Extender
	m     *metrics.Metrics
	rec   *events.FakeRecorder
	clock *testingclock.FakePassiveClock
	h     http.Handler
}

func newObserved(t *testing.T, pods ...*v1.Pod) *observed {
	t.Helper()
	ext, c, _ := newTestExtender(t, testNodes(t), pods...)
	o := &observed{ext: ext, rec: events.NewFakeRecorder(100), clock: ext.clock.(*testingclock.FakePassiveClock)}
	ready := syncedGate()
	o.m = metrics.New(metrics.Source{Cache: c, Ready: func() bool { return ready.Check() == nil }, Policies: ext.policies.All()})
	WithMetrics(o.m)(ext)
	WithEvents(o.rec, time.Minute)(ext)
	logger, _ := ktesting.NewTestContext(t)
	o.h = NewHandler(logger, ext, ready, HandlerOptions{Metrics: o.m})
	return o
}

func (o *observed) post(t *testing.T, verb string, body any) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/"+verb, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	o.h.ServeHTTP(w, req)
	return w.Code
}

func (o *observed) events() []string {
	var out []string
	for {
		select {
		case e := <-o.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestMetricsCountVerbsAndBinds: the request, bind and per-GPU series
// follow what the verbs did.
func TestMetricsCountVerbsAndBinds(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	o := newObserved(t, p)
	if code := o.post(t, "filter", argsFor(p, "a100", "t4")); code != http.StatusOK {
		t.Fatalf("filter: %d", code)
	}
	o.post(t, "prioritize", argsFor(p, "a100", "t4"))
	o.post(t, "bind", bindArgs(p, "a100"))
	o.post(t, "bind", bindArgs(p, "a100")) // already bound: refused
	o.post(t, "filter", map[string]any{"pod": 7})

	got := map[string]float64{
		"filter ok":            promtest.ToFloat64(o.m.RequestsCounter().WithLabelValues("filter", metrics.ResultOK)),
		"filter bad_request":   promtest.ToFloat64(o.m.RequestsCounter().WithLabelValues("filter", metrics.ResultBadRequest)),
		"prioritize ok":        promtest.ToFloat64(o.m.RequestsCounter().WithLabelValues("prioritize", metrics.ResultOK)),
		"bind ok":              promtest.ToFloat64(o.m.RequestsCounter().WithLabelValues("bind", metrics.ResultOK)),
		"bind error":           promtest.ToFloat64(o.m.RequestsCounter().WithLabelValues("bind", metrics.ResultError)),
		"binds bound":          promtest.ToFloat64(o.m.BindsCounter().WithLabelValues(metrics.BindBound)),
		"binds refused":        promtest.ToFloat64(o.m.BindsCounter().WithLabelValues(metrics.BindRefused)),
		"policy decisions":     float64(promtest.CollectAndCount(o.m.DecisionHistogram())),
		"request series count": float64(promtest.CollectAndCount(o.m.RequestsCounter())),
	}
	want := map[string]float64{
		"filter ok": 1, "filter bad_request": 1, "prioritize ok": 1, "bind ok": 1, "bind error": 1,
		"binds bound": 1, "binds refused": 1,
		"policy decisions":     2,  // binpack/filter and binpack/bind
		"request series count": 24, // every verb and result starts at zero
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// The scrape-time series: readiness, cache, and the share on the GPU
	// binpack chose (the first of a100).
	const expected = `
# HELP gpuslice_extender_cache_pods GPU pods holding shares in the extender's cache, by state: assumed (binding, not yet seen bound), confirmed, retired (moved shares in their grace period).
# TYPE gpuslice_extender_cache_pods gauge
gpuslice_extender_cache_pods{state="assumed"} 1
gpuslice_extender_cache_pods{state="confirmed"} 0
gpuslice_extender_cache_pods{state="retired"} 0
# HELP gpuslice_extender_ready 1 when the extender answers the verbs (informers synced, cache built, leader when electing), else 0.
# TYPE gpuslice_extender_ready gauge
gpuslice_extender_ready 1
# HELP gpuslice_extender_gpus GPUs of usable nodes by state: free (nothing allocated), partial, full (no gpu-mem slice free), unhealthy.
# TYPE gpuslice_extender_gpus gauge
gpuslice_extender_gpus{state="free"} 11
gpuslice_extender_gpus{state="full"} 0
gpuslice_extender_gpus{state="partial"} 1
gpuslice_extender_gpus{state="unhealthy"} 0
`
	if err := promtest.GatherAndCompare(o.m.Registry(), strings.NewReader(expected), metrics.CachePods, metrics.Ready, metrics.GPUs); err != nil {
		t.Error(err)
	}
	slices := map[string]float64{}
	mfs, err := o.m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metrics.GPUAllocatedSlices {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetGauge().GetValue(); v > 0 {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				slices[l["node"]+"/"+l["gpu"]+"/"+l["model"]] = v
			}
		}
	}
	if diff := cmp.Diff(map[string]float64{"a100/0/A100": 4}, slices); diff != "" {
		t.Errorf("allocated slices (-want +got):\n%s", diff)
	}
	// binpack's measure: the partly used A100 has 36 of 40 slices free.
	if got := gathered(t, o.m, metrics.Fragmentation, "policy", "binpack"); got != 0.9 {
		t.Errorf("fragmentation %v, want 0.9", got)
	}
}

// TestEventsRateLimitedPerPod: a pod no node can place gets one event of
// its typed reason per interval however often kube-scheduler retries it;
// an invalid request and a failed bind get theirs.
func TestEventsRateLimitedPerPod(t *testing.T) {
	big := testutil.Pod("big", testutil.Container("c", 60, 0, 0))
	bad := testutil.Pod("bad", testutil.Container("c", 3, 0, 2)) // 3 slices do not split over 2 GPUs
	o := newObserved(t, big, bad)
	for range 3 {
		o.post(t, "filter", argsFor(big, "a100", "t4"))
		o.post(t, "filter", argsFor(bad, "a100"))
	}
	o.post(t, "bind", bindArgs(big, "a100")) // not feasible: refused
	got := o.events()
	o.clock.SetTime(o.clock.Now().Add(59 * time.Second))
	o.post(t, "filter", argsFor(big, "a100", "t4"))
	got = append(got, o.events()...)
	o.clock.SetTime(o.clock.Now().Add(2 * time.Second))
	o.post(t, "filter", argsFor(big, "a100", "t4"))
	got = append(got, o.events()...)
	want := []string{
		"Warning InsufficientGPUMemory 0/2 nodes can place the pod's GPU request: 2 insufficient gpu-mem on every GPU",
		`Warning InvalidGPURequest invalid gpuslice request: container "c": gpu-mem 3 cannot be split evenly over 2 GPUs`,
		"Warning FailedGPUBind node a100 was not feasible for pod default/big when this extender filtered it",
		"Warning InsufficientGPUMemory 0/2 nodes can place the pod's GPU request: 2 insufficient gpu-mem on every GPU",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := promtest.ToFloat64(o.m.UnplaceableCounter().WithLabelValues("InsufficientGPUMemory")); got != 5 {
		t.Errorf("unplaceable InsufficientGPUMemory = %v, want 5", got)
	}
}

// gathered returns the value of the gauge series name{label=value}.
func gathered(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
