package charttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/gpuslice/gpuslice/e2e/chartrender"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// ns is the release namespace of the test: not the harness's own
// gpuslice-system, so that the service accounts' rights checked here are
// the chart's alone, not the harness's.
const ns = "gpuslice-charttest"

// TestChartOnControlPlane renders the Helm chart with Helm's Go SDK (the
// rendering `kubectl apply -k manifests/deploy` ships), applies every object
// to the real kube-apiserver with server-side apply and strict field
// validation, and checks that each exists as rendered. Without a
// controller-manager or kubelet nothing runs: the DaemonSet has no GPU node
// to run on, and the extender Deployment's pod spec is checked as stored,
// including that the extender and device plugin binaries accept the
// command lines the chart gives them.
func TestChartOnControlPlane(t *testing.T) {
	c := harness.Start(t, harness.Options{WithoutScheduler: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	manifest, err := chartrender.Render(ctx, chartrender.Options{ChartDir: filepath.Join(c.RepoRoot(), chartrender.ChartDir), Namespace: ns, Values: chartrender.DeployValues()})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chartrender.DecodeStrict("chart", []byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(o.Raw, &u.Object); err != nil {
			t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: the apiserver does not serve it: %v", o.Kind, o.Name, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			if u.GetNamespace() == "" {
				t.Errorf("%s %s: namespaced but the chart sets no namespace", o.Kind, o.Name)
				u.SetNamespace(ns)
			}
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		body, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "gpuslice-chart-e2e", Force: &force, FieldValidation: "Strict"}); err != nil {
			t.Errorf("apply %s %s/%s: %v", o.Kind, u.GetNamespace(), u.GetName(), err)
			continue
		}
		got, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Errorf("get %s %s: %v", o.Kind, u.GetName(), err)
			continue
		}
		if got.GetUID() == "" || got.GetLabels()["app.kubernetes.io/name"] != "gpuslice" && !strings.Contains(o.Kind, "AdmissionPolicy") {
			t.Errorf("%s %s stored without the chart's labels: %v", o.Kind, u.GetName(), got.GetLabels())
		}
	}
	want := map[string]int{
		"Namespace": 1, "ServiceAccount": 3, "ConfigMap": 2, "ClusterRole": 2, "ClusterRoleBinding": 4,
		"Role": 2, "RoleBinding": 3, "Service": 3 /* the extender and two headless metrics Services */, "Deployment": 2, "DaemonSet": 1, "PodDisruptionBudget": 1,
	}
	admission := kinds["ValidatingAdmissionPolicy"] > 0
	for k := range kinds {
		if strings.HasPrefix(k, "ValidatingAdmissionPolicy") || strings.HasPrefix(k, "MutatingAdmissionPolicy") {
			want[k] = kinds[k]
		}
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}

	t.Run("extender pod spec", func(t *testing.T) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "gpuslice-extender", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkExtenderDeployment(t, d)
		cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "gpuslice-sharing", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		runWithChartArgs(t, c.RepoRoot(), "gpuslice-extender", d.Spec.Template.Spec.Containers[0], cm)
	})

	t.Run("device plugin has no GPU node", func(t *testing.T) {
		ds, err := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "gpuslice-device-plugin-default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sel := labels.SelectorFromSet(ds.Spec.Template.Spec.NodeSelector)
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 0 {
			t.Errorf("%d nodes match the device plugin's selector %s", len(nodes.Items), sel)
		}
		if ds.Spec.Template.Spec.ServiceAccountName != "gpuslice-device-plugin" {
			t.Errorf("service account %s", ds.Spec.Template.Spec.ServiceAccountName)
		}
		cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "gpuslice-sharing", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		runWithChartArgs(t, c.RepoRoot(), "gpuslice-device-plugin", ds.Spec.Template.Spec.Containers[0], cm)
	})

	t.Run("RBAC grants only what the components use", func(t *testing.T) {
		checkRBAC(ctx, t, c)
	})

	t.Run("admission policy is enforced", func(t *testing.T) {
		if !admission {
			t.Skip("no admission policy in manifests/admission/ yet")
		}
		for _, o := range objs {
			if o.Kind != "ValidatingAdmissionPolicy" && o.Kind != "MutatingAdmissionPolicy" {
				continue
			}
			var last error
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				on, err := c.PolicyEnforced(ctx, o.Name)
				last = err
				return err == nil && on, nil
			})
			if err != nil {
				t.Errorf("policy %s not enforced: %v (last: %v)", o.Name, err, last)
			}
		}
	})
}

// checkExtenderDeployment checks the stored extender Deployment.
func checkExtenderDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	spec := d.Spec.Template.Spec
	if spec.ServiceAccountName != "gpuslice-extender" {
		t.Errorf("service account %q", spec.ServiceAccountName)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v, want nonroot 65532", sc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	ctr := spec.Containers[0]
	for _, a := range []string{
		"--leader-elect=true", "--leader-elect-namespace=" + ns, "--leader-elect-lease-name=gpuslice-extender",
		"--tls-cert-file=/etc/gpuslice/tls/tls.crt", "--tls-private-key-file=/etc/gpuslice/tls/tls.key",
		"--client-ca-file=/etc/gpuslice/tls/ca.crt", "--slice-mib=$(GPUSLICE_SLICE_MIB)",
	} {
		if !slices.Contains(ctr.Args, a) {
			t.Errorf("args %v lack %s", ctr.Args, a)
		}
	}
	if slices.ContainsFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--allow-unauthenticated") }) {
		t.Error("the chart serves without client authentication")
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Port.String() != "https" {
			t.Errorf("%s probe %+v, want HTTPS GET %s on port https", name, p, path)
		}
	}
	probe("readiness", ctr.ReadinessProbe, "/readyz")
	probe("liveness", ctr.LivenessProbe, "/healthz")
	if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v", sc)
	}
	var tlsSecret string
	for _, v := range spec.Volumes {
		if v.Name == "tls" && v.Secret != nil {
			tlsSecret = v.Secret.SecretName
		}
	}
	if tlsSecret != "gpuslice-extender-tls" {
		t.Errorf("serving secret %q", tlsSecret)
	}
	if len(ctr.Ports) != 2 || ctr.Ports[0].Name != "https" || ctr.Ports[1].Name != "metrics" || !slices.Contains(ctr.Args, fmt.Sprintf("--metrics-listen-address=:%d", ctr.Ports[1].ContainerPort)) {
		t.Errorf("ports %+v, want https and the metrics listener", ctr.Ports)
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Z_]+)\)`)

// runWithChartArgs runs the built binary with the container's arguments
// (with $(VAR) expanded as kubelet does, from the ConfigMap or fieldRefs)
// plus --version: it exits 0 only when every flag parses.
func runWithChartArgs(t *testing.T, repo, binary string, ctr corev1.Container, cm *corev1.ConfigMap) {
	t.Helper()
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			v, ok := cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			if !ok || e.ValueFrom.ConfigMapKeyRef.Name != cm.Name {
				t.Errorf("env %s: no key %s in ConfigMap %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Key, cm.Name)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "node-1"
		}
	}
	var args []string
	for _, a := range ctr.Args {
		args = append(args, envRef.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := env[envRef.FindStringSubmatch(m)[1]]
			if !ok {
				t.Errorf("argument %s names an unset variable", a)
			}
			return v
		}))
	}
	dir := os.Getenv("GPUSLICE_BIN")
	if dir == "" {
		dir = filepath.Join(repo, "bin")
	}
	out, err := exec.Command(filepath.Join(dir, binary), append(args, "--version")...).CombinedOutput()
	if err != nil {
		t.Errorf("%s %s --version: %v\n%s", binary, strings.Join(args, " "), err, out)
	}
}

// checkRBAC asks the apiserver what each service account may do.
func checkRBAC(ctx context.Context, t *testing.T, c *harness.Cluster) {
	type check struct {
		sa, verb, group, resource, sub, ns, name string
		allowed                                  bool
	}
	ext, dp := "gpuslice-extender", "gpuslice-device-plugin"
	checks := []check{
		{ext, "watch", "", "pods", "", "", "", true},
		{ext, "create", "", "pods", "binding", "default", "", true},
		{ext, "list", "", "nodes", "", "", "", true},
		{ext, "update", "coordination.k8s.io", "leases", "", ns, "gpuslice-extender", true},
		{ext, "update", "coordination.k8s.io", "leases", "", ns, "other", false},
		{ext, "update", "coordination.k8s.io", "leases", "", "kube-system", "gpuslice-extender", false},
		{ext, "patch", "", "pods", "", "default", "", false},
		{ext, "patch", "", "nodes", "", "", "", false},
		{ext, "get", "", "secrets", "", ns, "", false},
		{ext, "create", "events.k8s.io", "events", "", "default", "", true},
		{ext, "patch", "events.k8s.io", "events", "", "default", "", true},
		{ext, "delete", "events.k8s.io", "events", "", "default", "", false},
		{ext, "create", "", "events", "", "default", "", false},
		{dp, "create", "events.k8s.io", "events", "", "default", "", true},
		{dp, "patch", "events.k8s.io", "events", "", "default", "", true},
		{dp, "update", "events.k8s.io", "events", "", "default", "", false},
		{dp, "patch", "", "pods", "", "default", "", true},
		{dp, "patch", "", "nodes", "", "", "", true},
		{dp, "watch", "", "pods", "", "", "", true},
		{dp, "create", "", "pods", "binding", "default", "", false},
		{dp, "delete", "", "pods", "", "default", "", false},
		{dp, "update", "", "nodes", "status", "", "", false},
		{"gpuslice-scheduler", "update", "coordination.k8s.io", "leases", "", ns, "gpuslice-scheduler", true},
		{"gpuslice-scheduler", "create", "", "pods", "binding", "default", "", true},
		{"gpuslice-scheduler", "create", "authentication.k8s.io", "tokenreviews", "", "", "", true},
		{"gpuslice-scheduler", "get", "", "configmaps", "", "kube-system", "extension-apiserver-authentication", true},
		{"gpuslice-scheduler", "get", "", "secrets", "", ns, "", false},
	}
	for _, ck := range checks {
		user := "system:serviceaccount:" + ns + ":" + ck.sa
		r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: ck.verb, Group: ck.group, Resource: ck.resource, Subresource: ck.sub, Namespace: ck.ns, Name: ck.name,
			},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Status.Allowed; got != ck.allowed {
			t.Errorf("%s may %s %s/%s %s/%s: %v, want %v", ck.sa, ck.verb, ck.resource, ck.sub, ck.ns, ck.name, got, ck.allowed)
		}
	}
}
