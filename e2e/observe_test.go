package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/gpuslice/gpuslice/api"
	dpmetrics "github.com/gpuslice/gpuslice/deviceplugin/metrics"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// TestObserve is issue 15's end-to-end check of what an operator sees: the
// extender's /metrics (over kube-scheduler's mutual TLS) and the device
// plugin's, scraped after a burst, count exactly the pods bound and
// allocated; every query of the shipped Grafana dashboard and alert rules
// names a metric the components export; and a pod no node can place gets
// one event with its typed reason, visible like `kubectl get events`.
func TestObserve(t *testing.T) {
	c, d := startDPCluster(t)
	for i := range 2 {
		name := fmt.Sprintf("%s-a100-%d", d.group, i)
		inv := harness.A100x8().Inventory(name, c.SliceMiB)
		if _, err := c.AddGPUNode(d.ctx, harness.GPUNode{Name: name, Inventory: inv, Labels: map[string]string{groupLabel: d.group}}); err != nil {
			t.Fatal(err)
		}
		d.inv[name] = inv
		t.Cleanup(func() { _ = c.DeleteNode(context.Background(), name) })
	}
	dp := httptest.NewServer(d.dp.metrics.Handler())
	t.Cleanup(dp.Close)
	client := schedulerClient(t, c)

	// The burst: pods on the simulated nodes, and some on the device
	// plugin's node, which kubelet's device manager then admits.
	const simulated, pinned, slices = 30, 3, 4
	var pods []*corev1.Pod
	var names, onDP []string
	for i := range simulated + pinned {
		p := d.one(fmt.Sprintf("burst-%d", i), slices, 0, 0)
		op := corev1.NodeSelectorOpNotIn
		if i >= simulated {
			op = corev1.NodeSelectorOpIn
			onDP = append(onDP, p.Name)
		}
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: op, Values: []string{d.node}}}}},
		}}}
		pods, names = append(pods, p), append(names, p.Name)
	}
	d.create(pods, 10)
	d.waitBound(2*time.Minute, names...)
	for _, n := range onDP {
		d.admitChecked(n)
	}
	bound := float64(len(pods))

	var ext map[string]*dto.MetricFamily
	d.poll("the extender's metrics to count the burst", 200*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		if ext, err = harness.Scrape(ctx, client, c.ExtenderURL+"metrics"); err != nil {
			return false, err
		}
		got := map[string]float64{
			"ready":                  value(ext, metrics.Ready, nil),
			"binds bound":            value(ext, metrics.BindsTotal, map[string]string{"result": metrics.BindBound}),
			"bind requests ok":       value(ext, metrics.RequestsTotal, map[string]string{"verb": "bind", "result": metrics.ResultOK}),
			"confirmed pods":         value(ext, metrics.CachePods, map[string]string{"state": "confirmed"}),
			"allocated slices":       sum(ext, metrics.GPUAllocatedSlices, map[string]string{}),
			"binds failed":           value(ext, metrics.BindsTotal, map[string]string{"result": metrics.BindFailed}),
			"ambiguous binds":        value(ext, metrics.AmbiguousBindsTotal, nil),
			"usable nodes":           value(ext, metrics.CacheNodes, map[string]string{"state": "usable"}),
			"filter latency samples": histogramCount(ext, metrics.RequestDuration, map[string]string{"verb": "filter", "result": metrics.ResultOK}),
		}
		want := map[string]float64{
			"ready": 1, "binds bound": bound, "bind requests ok": bound, "confirmed pods": bound,
			"allocated slices": bound * slices, "binds failed": 0, "ambiguous binds": 0, "usable nodes": 3,
			"filter latency samples": got["filter latency samples"],
		}
		if got["filter latency samples"] < bound {
			return false, fmt.Errorf("%v filter requests timed, want at least %v", got["filter latency samples"], bound)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return false, fmt.Errorf("extender series (-want +got):\n%s", diff)
		}
		return true, nil
	})
	var plugin map[string]*dto.MetricFamily
	d.poll("the device plugin's metrics to count the admitted pods", 200*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		if plugin, err = harness.Scrape(ctx, http.DefaultClient, dp.URL+"/metrics"); err != nil {
			return false, err
		}
		got := map[string]float64{
			"allocate gpu-mem ok":      value(plugin, dpmetrics.AllocateTotal, map[string]string{"resource": api.ResourceGPUMem, "result": dpmetrics.ResultOK}),
			"allocate gpu-mem refused": value(plugin, dpmetrics.AllocateTotal, map[string]string{"resource": api.ResourceGPUMem, "result": dpmetrics.ResultRefused}),
			"prestart ok":              value(plugin, dpmetrics.PreStartTotal, map[string]string{"result": dpmetrics.ResultOK}),
			"healthy GPUs":             sum(plugin, dpmetrics.GPUHealthy, map[string]string{}),
			"reconcile errors":         value(plugin, dpmetrics.ReconcilesTotal, map[string]string{"result": dpmetrics.ResultError}),
		}
		want := map[string]float64{"allocate gpu-mem ok": pinned, "allocate gpu-mem refused": 0, "prestart ok": pinned, "healthy GPUs": dpGPUs, "reconcile errors": 0}
		if diff := cmp.Diff(want, got); diff != "" {
			return false, fmt.Errorf("device plugin series (-want +got):\n%s", diff)
		}
		if value(plugin, dpmetrics.ReconcilesTotal, map[string]string{"result": dpmetrics.ResultOK}) < 1 {
			return false, fmt.Errorf("no reconcile counted")
		}
		return true, nil
	})

	t.Run("DashboardAndRulesNameExportedMetrics", func(t *testing.T) {
		exported := map[string]bool{
			// Exported only under MPS isolation, which this node does not use.
			dpmetrics.MPSDaemonHealthy: true,
		}
		for _, fams := range []map[string]*dto.MetricFamily{ext, plugin} {
			for name, f := range fams {
				exported[name] = true
				if f.GetType() == dto.MetricType_HISTOGRAM {
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						exported[name+s] = true
					}
				}
			}
		}
		chart := filepath.Join(c.RepoRoot(), "manifests", "charts", "gpuslice", "files")
		var dash struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(filepath.Join(chart, "grafana-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("dashboard JSON: %v", err)
		}
		queries := map[string]string{}
		for _, p := range dash.Panels {
			for i, tg := range p.Targets {
				queries[fmt.Sprintf("panel %q query %d", p.Title, i)] = tg.Expr
			}
		}
		var rules struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		}
		b, err = os.ReadFile(filepath.Join(chart, "prometheus-rules.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// Strictly decoded by e2e/chartrender's tests; here only the
		// expressions matter.
		if err := yaml.Unmarshal(b, &rules); err != nil {
			t.Fatalf("rules: %v", err)
		}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				queries["alert "+r.Alert] = r.Expr
			}
		}
		if len(queries) < 10 {
			t.Fatalf("only %d queries found", len(queries))
		}
		name := regexp.MustCompile(`\bgpuslice_[a-z0-9_]+`)
		for where, q := range queries {
			found := name.FindAllString(q, -1)
			if len(found) == 0 {
				t.Errorf("%s names no gpuslice metric: %s", where, q)
			}
			for _, n := range found {
				if !exported[n] {
					t.Errorf("%s names %s, which neither component exports: %s", where, n, q)
				}
			}
		}
	})

	t.Run("UnplaceablePodEvent", func(t *testing.T) {
		// 60 slices fit every node's gpu-mem in total (kube-scheduler's own
		// filter passes) but no single GPU of 40 or 16: only the extender
		// can tell.
		d.create([]*corev1.Pod{d.one("huge", 60, 0, 0)}, 1)
		ev := waitEvent(t, d.env, d.ns, "huge", "InsufficientGPUMemory", "gpuslice-extender")
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "nodes can place the pod's GPU request") {
			t.Errorf("event %+v", ev)
		}
		// Every node change sends the pod through another scheduling
		// cycle (and another filter): still one event object, not one per
		// cycle (one per --pod-event-interval, 5m by default).
		unplaceable := func(ctx context.Context) (float64, error) {
			fams, err := harness.Scrape(ctx, client, c.ExtenderURL+"metrics")
			if err != nil {
				return 0, err
			}
			return value(fams, metrics.UnplaceableTotal, map[string]string{"reason": "InsufficientGPUMemory"}), nil
		}
		// Count from what the extender has already filtered (the cycles
		// behind the event), then ask for two more.
		start, err := unplaceable(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		prev := start
		for cycle := range 2 {
			d.poll("another scheduling cycle of the huge pod", 200*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
				n, err := unplaceable(ctx)
				if err != nil || n > prev {
					prev = n
					return err == nil, err
				}
				// Touch a node: kube-scheduler retries the pod.
				patch := fmt.Sprintf(`{"metadata":{"labels":{"e2e.gpuslice.io/touch":"%d-%d"}}}`, cycle, time.Now().UnixNano())
				if _, err := c.Client.CoreV1().Nodes().Patch(ctx, d.group+"-a100-0", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					return false, fmt.Errorf("touch node: %w", err)
				}
				return false, fmt.Errorf("%v unplaceable filters so far", n)
			})
		}
		if prev < start+2 {
			t.Fatalf("%v unplaceable filters after the event's %v, want at least 2 more", prev, start)
		}
		if n := len(eventsFor(t, d.env, d.ns, "huge", "InsufficientGPUMemory")); n != 1 {
			t.Errorf("%d events for the huge pod after several cycles, want 1", n)
		}
	})
}

// series returns the samples of name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && have[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// value returns the one sample of name with the labels, or -1 when there
// is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	s := series(fams, name, labels)
	if len(s) != 1 {
		return -1
	}
	return sampleValue(s[0])
}

// sum adds the samples of name with the labels.
func sum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	var out float64
	for _, m := range series(fams, name, labels) {
		out += sampleValue(m)
	}
	return out
}

// histogramCount returns the sample count of the one histogram series.
func histogramCount(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	s := series(fams, name, labels)
	if len(s) != 1 {
		return -1
	}
	return float64(s[0].GetHistogram().GetSampleCount())
}

// eventsFor lists, as `kubectl get events` does (core/v1), the events of
// reason on the pod.
func eventsFor(t *testing.T, e *env, ns, pod, reason string) []corev1.Event {
	t.Helper()
	l, err := e.c.Client.CoreV1().Events(ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, ev := range l.Items {
		if ev.InvolvedObject.Kind == "Pod" && ev.InvolvedObject.Name == pod && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for an event of reason on the pod, reported by
// controller, and returns it.
func waitEvent(t *testing.T, e *env, ns, pod, reason, controller string) corev1.Event {
	t.Helper()
	var got corev1.Event
	e.poll(fmt.Sprintf("event %s on pod %s/%s", reason, ns, pod), 200*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		evs := eventsFor(t, e, ns, pod, reason)
		for _, ev := range evs {
			if ev.ReportingController == controller {
				got = ev
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events of that reason, none from %s", len(evs), controller)
	})
	t.Logf("event %s on %s/%s from %s: %s", reason, ns, pod, controller, got.Message)
	return got
}
