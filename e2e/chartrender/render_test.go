package chartrender

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// repoRoot is the checkout the tests read the chart from.
const repoRoot = "../.."

// renderObjects renders the chart with values and decodes it strictly.
func renderObjects(t *testing.T, values map[string]any) []Object {
	t.Helper()
	out, err := Render(context.Background(), Options{ChartDir: filepath.Join(repoRoot, ChartDir), Values: values})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	objs, err := DecodeStrict("rendering", []byte(out))
	if err != nil {
		t.Fatalf("rendering does not decode strictly: %v\n%s", err, out)
	}
	return objs
}

// find returns the rendered object of a kind and name, or nil.
func find(objs []Object, kind, name string) any {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Typed
		}
	}
	return nil
}

func TestGeneratedManifestsAreCurrent(t *testing.T) {
	copies, err := AdmissionCopies(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Stale(repoRoot, copies)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := Rendered(context.Background(), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	more, err := Stale(repoRoot, rendered)
	if err != nil {
		t.Fatal(err)
	}
	if err := StaleError(append(stale, more...)); err != nil {
		t.Fatal(err)
	}
}

func TestStaleDetectsEdits(t *testing.T) {
	dir := t.TempDir()
	files := []File{{Path: "a.yaml", Content: []byte("a: 1\n")}, {Path: "gone.yaml"}}
	if got, err := Stale(dir, files); err != nil || !cmp.Equal(got, []string{"a.yaml"}) {
		t.Fatalf("missing file: Stale = %v, %v; want [a.yaml]", got, err)
	}
	if _, err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if got, err := Stale(dir, files); err != nil || len(got) != 0 {
		t.Fatalf("after Write: Stale = %v, %v; want none", got, err)
	}
	for name, content := range map[string]string{"a.yaml": "a: 2\n", "gone.yaml": "x: 1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Stale(dir, files); err != nil || !cmp.Equal(got, []string{"a.yaml", "gone.yaml"}) {
		t.Fatalf("edited: Stale = %v, %v; want [a.yaml gone.yaml]", got, err)
	}
}

func TestAdmissionRenderingEqualsPlainFiles(t *testing.T) {
	plain, err := filepath.Glob(filepath.Join(repoRoot, AdmissionDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []Object
	for _, p := range plain {
		want = append(want, decodeFile(t, p)...)
	}
	var got []Object
	for _, o := range renderObjects(t, nil) {
		if strings.HasPrefix(o.APIVersion, "admissionregistration.k8s.io/") {
			got = append(got, o)
		}
	}
	key := func(o Object) string { return o.Kind + "/" + o.Name }
	wantBy, gotBy := map[string]any{}, map[string]any{}
	for _, o := range want {
		wantBy[key(o)] = o.Typed
	}
	for _, o := range got {
		gotBy[key(o)] = o.Typed
	}
	if diff := cmp.Diff(wantBy, gotBy); diff != "" {
		t.Errorf("chart's admission objects (default values) differ from manifests/admission/ (-plain +chart):\n%s", diff)
	}
}

func TestAdmissionFollowsTheNamespace(t *testing.T) {
	out, err := Render(context.Background(), Options{ChartDir: filepath.Join(repoRoot, ChartDir), Namespace: "gpu-system"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "gpuslice-system") {
		t.Errorf("rendering in namespace gpu-system still names gpuslice-system:\n%s", out)
	}
}

func TestRenderValues(t *testing.T) {
	mpsPool := map[string]any{"pools": []any{
		map[string]any{"name": "a100", "nodeSelector": map[string]any{"pool": "a100"}, "isolation": "mps", "slotsPerGPU": 4, "deviceListStrategy": "cdi", "nvmlAccess": "privileged"},
		map[string]any{"name": "t4", "nodeSelector": map[string]any{"pool": "t4"}, "isolation": "none", "slotsPerGPU": 8, "deviceListStrategy": "cdi", "nvmlAccess": "env"},
	}}
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, objs []Object)
	}{{
		name: "defaults",
		check: func(t *testing.T, objs []Object) {
			d, _ := find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment)
			if d == nil || *d.Spec.Replicas != 2 {
				t.Fatalf("extender Deployment: %+v", d)
			}
			if find(objs, "Namespace", Namespace) != nil {
				t.Error("namespace rendered although namespace.create is false")
			}
			if find(objs, "Deployment", "gpuslice-scheduler") == nil {
				t.Error("no second scheduler")
			}
			cm, _ := find(objs, "ConfigMap", "gpuslice-sharing").(*corev1.ConfigMap)
			if cm == nil || cm.Data["slice-mib"] != "1024" {
				t.Errorf("sharing ConfigMap: %+v", cm)
			}
			if got := envValue(d.Spec.Template.Spec.Containers[0], "GOMEMLIMIT"); got != "256MiB" {
				t.Errorf("extender GOMEMLIMIT = %q, want 256MiB", got)
			}
		},
	}, {
		name:   "extender GOMEMLIMIT follows its value, and is unset when empty",
		values: map[string]any{"extender": map[string]any{"goMemLimit": "700MiB"}},
		check: func(t *testing.T, objs []Object) {
			ext := find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			if got := envValue(ext, "GOMEMLIMIT"); got != "700MiB" {
				t.Errorf("GOMEMLIMIT = %q, want 700MiB", got)
			}
			unset := renderObjects(t, map[string]any{"extender": map[string]any{"goMemLimit": ""}})
			ext = find(unset, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			if slices.ContainsFunc(ext.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
				t.Errorf("GOMEMLIMIT set although goMemLimit is empty: %+v", ext.Env)
			}
		},
	}, {
		name:   "slice size reaches both halves",
		values: map[string]any{"sharing": map[string]any{"sliceMiB": 512}},
		check: func(t *testing.T, objs []Object) {
			cm := find(objs, "ConfigMap", "gpuslice-sharing").(*corev1.ConfigMap)
			if cm.Data["slice-mib"] != "512" {
				t.Errorf("slice-mib = %q", cm.Data["slice-mib"])
			}
			ext := find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			if !containsString(ext.Args, "--slice-mib=$(GPUSLICE_SLICE_MIB)") || envFromConfigMap(ext, "GPUSLICE_SLICE_MIB") != "gpuslice-sharing/slice-mib" {
				t.Errorf("the extender does not read slice-mib from the sharing ConfigMap: args %v", ext.Args)
			}
			// The device plugin reads it from its pool's config file
			// (TestPoolConfigs decodes it).
			fc := poolConfig(t, objs, "gpuslice-device-plugin-default")
			if fc.SliceMiB == nil || *fc.SliceMiB != 512 {
				t.Errorf("the device plugin's config has sliceMiB %v, want 512", fc.SliceMiB)
			}
		},
	}, {
		name:   "one DaemonSet per pool, security context per mode",
		values: map[string]any{"devicePlugin": mpsPool},
		check: func(t *testing.T, objs []Object) {
			mps := find(objs, "DaemonSet", "gpuslice-device-plugin-a100").(*appsv1.DaemonSet).Spec.Template.Spec
			none := find(objs, "DaemonSet", "gpuslice-device-plugin-t4").(*appsv1.DaemonSet).Spec.Template.Spec
			if sc := mps.Containers[0].SecurityContext; sc.Privileged == nil || !*sc.Privileged {
				t.Errorf("mps pool not privileged: %+v", sc)
			}
			if fc := poolConfig(t, objs, "gpuslice-device-plugin-a100"); fc.MPS.Root == nil || *fc.MPS.Root != "/run/gpuslice/mps" || !hasHostPath(mps, "/run/gpuslice/mps") {
				t.Error("mps pool lacks the MPS root")
			}
			sc := none.Containers[0].SecurityContext
			if sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 {
				t.Errorf("env pool's security context: %+v", sc)
			}
			if hasHostPath(none, "/run/gpuslice/mps") {
				t.Error("none pool mounts the MPS root")
			}
			for _, p := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources", "/sys"} {
				if !hasHostPath(none, p) || !hasHostPath(mps, p) {
					t.Errorf("host path %s missing", p)
				}
			}
			if diff := cmp.Diff(map[string]string{"pool": "a100"}, mps.NodeSelector); diff != "" {
				t.Errorf("node selector (-want +got):\n%s", diff)
			}
		},
	}, {
		name:   "cert-manager",
		values: map[string]any{"tls": map[string]any{"mode": "cert-manager", "extraIPAddresses": []any{"10.96.0.50"}}},
		check: func(t *testing.T, objs []Object) {
			var kinds []string
			for _, o := range objs {
				if o.Typed == nil {
					kinds = append(kinds, o.Kind+"/"+o.Name)
				}
			}
			want := []string{"Certificate/gpuslice-ca", "Certificate/gpuslice-extender", "Certificate/gpuslice-scheduler-client", "Issuer/gpuslice-ca", "Issuer/gpuslice-selfsigned"}
			slices.Sort(kinds)
			if diff := cmp.Diff(want, kinds); diff != "" {
				t.Errorf("cert-manager objects (-want +got):\n%s", diff)
			}
			for _, o := range objs {
				if o.Kind != "Certificate" || o.Name != "gpuslice-extender" {
					continue
				}
				var cert struct {
					Spec struct {
						SecretName  string   `json:"secretName"`
						DNSNames    []string `json:"dnsNames"`
						IPAddresses []string `json:"ipAddresses"`
						Usages      []string `json:"usages"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal(o.Raw, &cert); err != nil {
					t.Fatal(err)
				}
				if cert.Spec.SecretName != "gpuslice-extender-tls" || !slices.Contains(cert.Spec.DNSNames, "gpuslice-extender.gpuslice-system.svc") ||
					!slices.Equal(cert.Spec.IPAddresses, []string{"10.96.0.50"}) || !slices.Equal(cert.Spec.Usages, []string{"server auth"}) {
					t.Errorf("serving certificate %+v", cert.Spec)
				}
			}
		},
	}, {
		name:   "no second scheduler",
		values: map[string]any{"scheduler": map[string]any{"enabled": false}},
		check: func(t *testing.T, objs []Object) {
			for _, o := range objs {
				if strings.Contains(o.Name, "gpuslice-scheduler") && o.Kind != "Secret" {
					t.Errorf("%s/%s rendered with scheduler.enabled=false", o.Kind, o.Name)
				}
			}
		},
	}, {
		name:   "scheduler image is the cluster's version unless set",
		values: map[string]any{"scheduler": map[string]any{"image": map[string]any{"tag": "v1.35.4"}}},
		check: func(t *testing.T, objs []Object) {
			img := find(objs, "Deployment", "gpuslice-scheduler").(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Image
			if img != "registry.k8s.io/kube-scheduler:v1.35.4" {
				t.Errorf("image %s", img)
			}
		},
	}, {
		name: "defaults: no schedulerName mutation, no FUSE",
		check: func(t *testing.T, objs []Object) {
			if find(objs, "MutatingAdmissionPolicy", "gpuslice-scheduler-name") != nil {
				t.Error("gpuslice-scheduler-name rendered with admission.setSchedulerName off")
			}
			ds := find(objs, "DaemonSet", "gpuslice-device-plugin-default").(*appsv1.DaemonSet)
			for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "--fuse-count") {
					t.Errorf("device plugin arg %s with fuseCount 0", a)
				}
			}
		},
	}, {
		name: "setSchedulerName and fuseCount",
		values: map[string]any{
			"admission":    map[string]any{"setSchedulerName": map[string]any{"enabled": true}},
			"devicePlugin": map[string]any{"fuseCount": 16},
		},
		check: func(t *testing.T, objs []Object) {
			p, _ := find(objs, "MutatingAdmissionPolicy", "gpuslice-scheduler-name").(*admissionv1.MutatingAdmissionPolicy)
			if p == nil || len(p.Spec.Mutations) != 1 || !strings.Contains(p.Spec.Mutations[0].ApplyConfiguration.Expression, "schedulerName: 'gpuslice-scheduler'") {
				t.Errorf("gpuslice-scheduler-name: %+v", p)
			}
			if find(objs, "MutatingAdmissionPolicyBinding", "gpuslice-scheduler-name") == nil {
				t.Error("no binding gpuslice-scheduler-name")
			}
			ds := find(objs, "DaemonSet", "gpuslice-device-plugin-default").(*appsv1.DaemonSet)
			if !slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--fuse-count=16") {
				t.Errorf("device plugin args %v lack --fuse-count=16", ds.Spec.Template.Spec.Containers[0].Args)
			}
		},
	}, {
		name:   "runtime classes of VM sandboxes reach the extender",
		values: map[string]any{"extender": map[string]any{"runtimeClassIsolation": map[string]any{"kubevirt": "vgpu", "kata-gpu": "passthrough"}}},
		check: func(t *testing.T, objs []Object) {
			ext := find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			var got []string
			for _, a := range ext.Args {
				if strings.HasPrefix(a, "--runtime-class-isolation") {
					got = append(got, a)
				}
			}
			if diff := cmp.Diff([]string{"--runtime-class-isolation=kata-gpu=passthrough,kubevirt=vgpu"}, got); diff != "" {
				t.Errorf("extender args (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "a vGPU pool writes sysfs and its CDI spec; other pools do not",
		values: map[string]any{"devicePlugin": map[string]any{"pools": []any{
			map[string]any{"name": "vm", "nodeSelector": map[string]any{"pool": "vm"}, "isolation": "vgpu", "deviceListStrategy": "cdi", "nvmlAccess": "privileged",
				"config": map[string]any{"vgpu": map[string]any{"gpus": []any{map[string]any{"select": map[string]any{"index": 0}, "mode": "passthrough"}}}}},
			map[string]any{"name": "t4", "nodeSelector": map[string]any{"pool": "t4"}, "isolation": "none", "slotsPerGPU": 8, "deviceListStrategy": "cdi", "nvmlAccess": "env"},
		}}},
		check: func(t *testing.T, objs []Object) {
			for ds, wantRW := range map[string]bool{"gpuslice-device-plugin-vm": true, "gpuslice-device-plugin-t4": false} {
				ctr := find(objs, "DaemonSet", ds).(*appsv1.DaemonSet).Spec.Template.Spec.Containers[0]
				for _, m := range ctr.VolumeMounts {
					if (m.MountPath == "/sys" || m.MountPath == "/var/run/cdi") && m.ReadOnly == wantRW {
						t.Errorf("%s: %s mounted readOnly=%v", ds, m.MountPath, m.ReadOnly)
					}
				}
				if wantRW && (ctr.SecurityContext.Privileged == nil || !*ctr.SecurityContext.Privileged) {
					t.Errorf("%s: vgpu pool not privileged", ds)
				}
			}
		},
	}, {
		name: "defaults: no runtime-class mapping",
		check: func(t *testing.T, objs []Object) {
			for _, a := range find(objs, "Deployment", "gpuslice-extender").(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "--runtime-class-isolation") {
					t.Errorf("extender arg %s without a mapping", a)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, renderObjects(t, tt.values)) })
	}
}

func TestRenderRejectsBadValues(t *testing.T) {
	pool := func(isolation, access string) map[string]any {
		return map[string]any{"devicePlugin": map[string]any{"pools": []any{map[string]any{
			"name": "p", "nodeSelector": map[string]any{"a": "b"}, "isolation": isolation, "slotsPerGPU": 4, "deviceListStrategy": "cdi", "nvmlAccess": access,
		}}}}
	}
	tests := []struct {
		name    string
		values  map[string]any
		wantErr string
	}{
		{"unknown isolation", pool("hami", "privileged"), `isolation must be none, mps or vgpu, not "hami"`},
		{"vgpu without sizing", pool("vgpu", "privileged"), "isolation vgpu needs config.vgpu"},
		{"vgpu unprivileged", withConfig(pool("vgpu", "env"), map[string]any{"vgpu": map[string]any{"gpus": []any{map[string]any{"select": map[string]any{"index": 0}, "mode": "passthrough"}}}}), "isolation vgpu needs nvmlAccess privileged"},
		{"mps without privilege", pool("mps", "env"), "isolation mps needs nvmlAccess privileged"},
		{"slice size in a pool's config", withConfig(pool("none", "privileged"), map[string]any{"sliceMiB": 512}), "devicePlugin.pools[p].config.sliceMiB: set it on the pool (or sharing.sliceMiB), not in config"},
		{"runtime class to a container mode", map[string]any{"extender": map[string]any{"runtimeClassIsolation": map[string]any{"kata": "mps"}}}, `extender.runtimeClassIsolation[kata] must be vgpu or passthrough, not "mps"`},
		{"unknown tls mode", map[string]any{"tls": map[string]any{"mode": "plain"}}, `tls.mode must be secrets or cert-manager, not "plain"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(context.Background(), Options{ChartDir: filepath.Join(repoRoot, ChartDir), Values: tt.values})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Render error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func containsString(list []string, s string) bool { return slices.Contains(list, s) }

// envValue returns the literal value of a container's env var.
func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// envFromConfigMap returns "configmap/key" of a container's env var.
func envFromConfigMap(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			return e.ValueFrom.ConfigMapKeyRef.Name + "/" + e.ValueFrom.ConfigMapKeyRef.Key
		}
	}
	return ""
}

func hasHostPath(spec corev1.PodSpec, path string) bool {
	for _, v := range spec.Volumes {
		if v.HostPath != nil && v.HostPath.Path == path {
			return true
		}
	}
	return false
}
