package chartrender

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func findRaw(objs []Object, kind, name string) []byte {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Raw
		}
	}
	return nil
}

// TestRenderMetrics: by default both components serve /metrics on their
// metrics port with a headless Service each; the ServiceMonitors, the
// PrometheusRule (the shipped rule file as its spec) and the dashboard
// ConfigMap (the shipped JSON) appear only when asked for.
func TestRenderMetrics(t *testing.T) {
	def := renderObjects(t, nil)
	ext := find(def, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	dp := find(def, "DaemonSet", "gpuslice-device-plugin-default").(*appsv1.DaemonSet).Spec.Template.Spec.Containers[0]
	for _, tc := range []struct {
		c    corev1.Container
		port int32
	}{{ext, 9090}, {dp, 9500}} {
		if !containsString(tc.c.Args, "--metrics-listen-address=:"+strconv.Itoa(int(tc.port))) {
			t.Errorf("%s: args %v lack the metrics address", tc.c.Name, tc.c.Args)
		}
		found := false
		for _, p := range tc.c.Ports {
			found = found || (p.Name == "metrics" && p.ContainerPort == tc.port)
		}
		if !found {
			t.Errorf("%s: no metrics port %d in %+v", tc.c.Name, tc.port, tc.c.Ports)
		}
	}
	for _, name := range []string{"gpuslice-extender-metrics", "gpuslice-device-plugin-metrics"} {
		svc, _ := find(def, "Service", name).(*corev1.Service)
		if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: %+v", name, svc)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		for _, o := range def {
			if o.Kind == kind {
				t.Errorf("%s %s rendered by default (its CRD may be absent)", kind, o.Name)
			}
		}
	}

	on := renderObjects(t, map[string]any{"metrics": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kps"}},
		"prometheusRule": map[string]any{"enabled": true},
		"dashboard":      map[string]any{"enabled": true},
	}})
	for _, name := range []string{"gpuslice-extender", "gpuslice-device-plugin"} {
		raw := findRaw(on, "ServiceMonitor", name)
		var sm struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Selector  struct{ MatchLabels map[string]string } `json:"selector"`
				Endpoints []struct {
					Port, Path, Interval string
				} `json:"endpoints"`
			} `json:"spec"`
		}
		if raw == nil || yaml.Unmarshal(raw, &sm) != nil || sm.Metadata.Labels["release"] != "kps" ||
			sm.Spec.Selector.MatchLabels["gpuslice.io/metrics"] != "true" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
			t.Errorf("ServiceMonitor %s: %+v\n%s", name, sm, raw)
		}
	}
	shipped, err := os.ReadFile(filepath.Join(repoRoot, ChartDir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeRules(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(findRaw(on, "PrometheusRule", "gpuslice"), &pr); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRules(pr.Spec)
	if err != nil {
		t.Fatalf("PrometheusRule spec: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PrometheusRule spec differs from %s (-file +rendered):\n%s", RulesFile, diff)
	}
	cm, _ := find(on, "ConfigMap", "gpuslice-grafana-dashboard").(*corev1.ConfigMap)
	dash, err := os.ReadFile(filepath.Join(repoRoot, ChartDir, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	if cm == nil || cm.Labels["grafana_dashboard"] != "1" || cm.Data["gpuslice.json"] != string(dash[:len(dash)-1]) || !json.Valid([]byte(cm.Data["gpuslice.json"])) {
		t.Errorf("dashboard ConfigMap does not carry %s as valid JSON: %+v", DashboardFile, cm)
	}
}
