package chartrender

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	corev1 "k8s.io/api/core/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"sigs.k8s.io/yaml"
)

// TestShippedYAMLDecodesStrictly decodes every YAML file under manifests/
// with the Kubernetes scheme (kube-scheduler's for its configuration,
// kustomize's for kustomizations), unknown and duplicate fields being
// errors. The chart's templates are not YAML; their rendering is checked by
// TestRenderValues and, as manifests/deploy/, here.
func TestShippedYAMLDecodesStrictly(t *testing.T) {
	root := filepath.Join(repoRoot, "manifests")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "templates" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"deploy/gpuslice.yaml", "deploy/kustomization.yaml", "scheduler-config.yaml", "kube-scheduler/kubeadm-scheduler-config.yaml", "examples/01-share.yaml"} {
		if _, err := os.Stat(filepath.Join(root, want)); err != nil {
			t.Errorf("manifests/%s: %v", want, err)
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Base(f) {
			case "Chart.yaml":
				var md chartv2.Metadata
				if err := yaml.UnmarshalStrict(b, &md); err != nil {
					t.Fatal(err)
				}
				if err := md.Validate(); err != nil {
					t.Fatal(err)
				}
				return
			case "values.yaml":
				var v map[string]any
				if err := yaml.UnmarshalStrict(b, &v); err != nil {
					t.Fatal(err)
				}
				return
			case "prometheus-rules.yaml":
				if _, err := DecodeRules(b); err != nil {
					t.Fatal(err)
				}
				return
			}
			objs, err := DecodeStrict(rel, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("no object")
			}
			for _, o := range objs {
				if o.Typed == nil {
					t.Errorf("%s %s: kind not decoded", o.Kind, o.Name)
				}
			}
		})
	}
}

// TestStrictDecodingCatchesMistakes keeps the strict test honest.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	tests := map[string]string{
		"unknown field":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatta: {}\n",
		"duplicate field":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {}\ndata: {}\n",
		"unknown kind":          "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n",
		"scheduler typo":        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders:\n  - urlPrefix: http://a/\n    filterverb: filter\n",
		"invalid scheduler":     "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders:\n  - urlPrefix: http://a/\n    prioritizeVerb: prioritize\n    weight: -1\n",
		"kustomization typo":    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n",
		"no apiVersion or kind": "metadata: {name: a}\n",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeStrict(name, []byte(doc)); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
}

// addressFields blanks what the chart, the kubeadm stanza and the harness
// set per installation, so that what remains must be identical.
func addressFields(c *schedconfig.KubeSchedulerConfiguration) {
	c.ClientConnection.Kubeconfig = ""
	c.LeaderElection.ResourceName, c.LeaderElection.ResourceNamespace = "", ""
	for i := range c.Profiles {
		c.Profiles[i].SchedulerName = ""
	}
	for i := range c.Extenders {
		c.Extenders[i].URLPrefix = ""
		c.Extenders[i].EnableHTTPS = false
		c.Extenders[i].TLSConfig = nil
	}
}

// TestSchedulerConfigIsOneSource checks that the chart's second scheduler
// and the kubeadm stanza run files/scheduler-config.yaml (the file the e2e
// harness templates, through manifests/scheduler-config.yaml) with only
// their addresses, TLS files, schedulerName and Lease changed, and that the
// harness's path is that very file.
func TestSchedulerConfigIsOneSource(t *testing.T) {
	same, err := sameFile(filepath.Join(repoRoot, "manifests/scheduler-config.yaml"), filepath.Join(repoRoot, SchedulerConfig))
	if err != nil || !same {
		t.Errorf("manifests/scheduler-config.yaml is not %s (a link to it): %v", SchedulerConfig, err)
	}
	read := func(t *testing.T, b []byte) *schedconfig.KubeSchedulerConfiguration {
		t.Helper()
		c, err := DecodeSchedulerConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	shippedRaw, err := os.ReadFile(filepath.Join(repoRoot, SchedulerConfig))
	if err != nil {
		t.Fatal(err)
	}
	shipped := read(t, shippedRaw)
	if !shipped.LeaderElection.LeaderElect {
		t.Error("the shipped config has kube-scheduler's leader election off")
	}
	var chartRaw string
	for _, o := range renderObjects(t, nil) {
		if o.Kind == "ConfigMap" && o.Name == "gpuslice-scheduler-config" {
			chartRaw = o.Typed.(*corev1.ConfigMap).Data["scheduler-config.yaml"]
		}
	}
	if chartRaw == "" {
		t.Fatal("no gpuslice-scheduler-config ConfigMap")
	}
	chart := read(t, []byte(chartRaw))
	kubeadmRaw, err := KubeadmStanza(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	kubeadm := read(t, kubeadmRaw)

	// What the chart and kubeadm set.
	if got := chart.Extenders[0].URLPrefix; got != "https://gpuslice-extender.gpuslice-system.svc:443/" {
		t.Errorf("chart urlPrefix %s", got)
	}
	for name, c := range map[string]*schedconfig.KubeSchedulerConfiguration{"chart": chart, "kubeadm": kubeadm} {
		e := c.Extenders[0]
		if !e.EnableHTTPS || e.TLSConfig == nil || e.TLSConfig.CertFile == "" || e.TLSConfig.KeyFile == "" || e.TLSConfig.CAFile == "" || e.TLSConfig.Insecure {
			t.Errorf("%s: extender call is not mutual TLS: %+v", name, e.TLSConfig)
		}
		if !c.LeaderElection.LeaderElect {
			t.Errorf("%s: leader election off", name)
		}
	}
	if chart.Profiles[0].SchedulerName != "gpuslice-scheduler" || chart.LeaderElection.ResourceName != "gpuslice-scheduler" || chart.LeaderElection.ResourceNamespace != Namespace || chart.ClientConnection.Kubeconfig != "" {
		t.Errorf("chart identity: profile %s, lease %s/%s, kubeconfig %q", chart.Profiles[0].SchedulerName, chart.LeaderElection.ResourceNamespace, chart.LeaderElection.ResourceName, chart.ClientConnection.Kubeconfig)
	}
	if kubeadm.Profiles[0].SchedulerName != "default-scheduler" || kubeadm.ClientConnection.Kubeconfig != "/etc/kubernetes/scheduler.conf" {
		t.Errorf("kubeadm identity: profile %s, kubeconfig %s", kubeadm.Profiles[0].SchedulerName, kubeadm.ClientConnection.Kubeconfig)
	}

	// And nothing else differs.
	for _, c := range []*schedconfig.KubeSchedulerConfiguration{shipped, chart, kubeadm} {
		addressFields(c)
	}
	opts := cmpopts.EquateEmpty()
	if diff := cmp.Diff(shipped, chart, opts); diff != "" {
		t.Errorf("chart's scheduler config differs from %s beyond its addresses (-shipped +chart):\n%s", SchedulerConfig, diff)
	}
	if diff := cmp.Diff(shipped, kubeadm, opts); diff != "" {
		t.Errorf("kubeadm stanza differs from %s beyond its addresses (-shipped +kubeadm):\n%s", SchedulerConfig, diff)
	}
}

func sameFile(a, b string) (bool, error) {
	ia, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(ia, ib), nil
}
