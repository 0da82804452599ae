package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// Namespace labels of manifests/admission/ that a cluster admin sets.
const (
	labelAllowHostAccess  = "gpuslice.io/allow-host-access"
	labelAllowFuseWithGPU = "gpuslice.io/allow-fuse-with-gpu"
	labelAllowAllGPUs     = "gpuslice.io/allow-all-gpus"
	resourceFuse          = "gpuslice.io/fuse"
)

// TestPodSecurity is issue 14's admission part, on the real API server with
// the shipped policies (manifests/admission/): GPU pods that are
// privileged, add SYS_ADMIN or mount the host's /dev are rejected with a
// message that says why; GPU containers that set the GPU variables are
// rejected; GPU-less containers get NVIDIA_VISIBLE_DEVICES=void; requests
// that break the contract are rejected at create with api's own message;
// and the namespace labels exempt what the README says they do. Admission
// only: no scheduler, every create is a dry run.
func TestPodSecurity(t *testing.T) {
	c := startCluster(t, harness.Options{WithoutScheduler: true})
	ctx := t.Context()
	plain := secNamespace(t, c, "sec-plain", nil)

	t.Run("HostAccess", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pod  *corev1.Pod
			want []string // "" : allowed
		}{
			{"privileged GPU pod", secPod(gpuMem(2), privileged), []string{"container main is privileged", "sees every GPU", labelAllowHostAccess}},
			{"privileged init container", withInit(secPod(gpuMem(2)), privileged), []string{"container init is privileged"}},
			{"SYS_ADMIN", secPod(gpuMem(2), caps("SYS_ADMIN")), []string{"adds the SYS_ADMIN capability"}},
			{"cap_sys_admin", secPod(gpuMem(2), caps("cap_sys_admin")), []string{"adds the SYS_ADMIN capability"}},
			{"ALL", secPod(gpuMem(2), caps("ALL")), []string{"adds the SYS_ADMIN capability"}},
			{"hostPath /dev", withHostPath(secPod(gpuMem(2)), "/dev"), []string{"mounts the host's /dev", "(/dev)"}},
			{"hostPath /dev/nvidia0", withHostPath(secPod(gpuMem(2)), "/dev/nvidia0"), []string{"mounts the host's /dev"}},
			{"hostPath /", withHostPath(secPod(gpuMem(2)), "/"), []string{"mounts the host's /dev"}},
			{"hostPath //dev/", withHostPath(secPod(gpuMem(2)), "//dev/"), []string{"mounts the host's /dev"}},
			{"hostPath /devices is fine", withHostPath(secPod(gpuMem(2)), "/devices"), nil},
			{"GPU pod with NET_ADMIN is fine", secPod(gpuMem(2), caps("NET_ADMIN")), nil},
			{"privileged pod without gpuslice resources is not ours", secPod(nil, privileged), nil},
			{"fuse without GPU may add SYS_ADMIN", secPod(fuse(nil), caps("SYS_ADMIN")), nil},
			{"fuse without GPU may not be privileged", secPod(fuse(nil), privileged), []string{"is privileged", resourceFuse}},
			{"fuse with GPU may not add SYS_ADMIN", secPod(fuse(gpuMem(2)), caps("SYS_ADMIN")), []string{"adds the SYS_ADMIN capability", labelAllowFuseWithGPU}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectAdmission(ctx, t, c, plain, tc.pod, harness.PolicyHostAccess, tc.want)
			})
		}
		t.Run("ephemeral container", func(t *testing.T) {
			p := secPod(gpuMem(2))
			p.Name = "running-gpu-pod"
			got, err := c.Client.CoreV1().Pods(plain).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptrTo(true)},
			}}}
			_, err = c.Client.CoreV1().Pods(plain).UpdateEphemeralContainers(ctx, p.Name, got, metav1.UpdateOptions{})
			checkDenied(t, err, harness.PolicyHostAccess, []string{"container debug is privileged"})
		})
	})

	t.Run("AllowedNamespace", func(t *testing.T) {
		host := secNamespace(t, c, "sec-host", map[string]string{labelAllowHostAccess: "true"})
		fuseNS := secNamespace(t, c, "sec-fuse", map[string]string{labelAllowFuseWithGPU: "true"})
		// The policies read namespaces from an informer: poll until the
		// labels are seen.
		pollAllowed(ctx, t, c, host, secPod(gpuMem(2), privileged))
		for _, p := range []*corev1.Pod{
			secPod(gpuMem(2), caps("SYS_ADMIN")),
			withHostPath(secPod(gpuMem(2)), "/dev"),
		} {
			expectAdmission(ctx, t, c, host, p, harness.PolicyHostAccess, nil)
		}
		pollAllowed(ctx, t, c, fuseNS, secPod(fuse(gpuMem(2)), caps("SYS_ADMIN")))
		// allow-fuse-with-gpu is about SYS_ADMIN with gpuslice.io/fuse only.
		expectAdmission(ctx, t, c, fuseNS, secPod(gpuMem(2), caps("SYS_ADMIN")), harness.PolicyHostAccess, []string{"adds the SYS_ADMIN capability"})
		expectAdmission(ctx, t, c, fuseNS, secPod(fuse(gpuMem(2)), privileged), harness.PolicyHostAccess, []string{"is privileged"})
		// No label exempts a GPU container from the variable rule.
		expectAdmission(ctx, t, c, host, secPod(gpuMem(2), setEnv("NVIDIA_VISIBLE_DEVICES", "all")), harness.PolicyGPUEnv, []string{"main: NVIDIA_VISIBLE_DEVICES"})
	})

	t.Run("EnvSpoofing", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			pod  *corev1.Pod
			want []string
		}{
			{"NVIDIA_VISIBLE_DEVICES=all", secPod(gpuMem(2), setEnv("NVIDIA_VISIBLE_DEVICES", "all")), []string{"main: NVIDIA_VISIBLE_DEVICES", "may not set"}},
			{"CUDA_VISIBLE_DEVICES", secPod(gpuMem(2), setEnv("CUDA_VISIBLE_DEVICES", "0,1")), []string{"main: CUDA_VISIBLE_DEVICES"}},
			{"NVIDIA_DRIVER_CAPABILITIES", secPod(gpuMem(2), setEnv("NVIDIA_DRIVER_CAPABILITIES", "all")), []string{"main: NVIDIA_DRIVER_CAPABILITIES"}},
			{"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", secPod(gpuMem(2), setEnv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "0=80G")), []string{"main: CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"}},
			{"gpu-core only container", secPod(corev1.ResourceList{api.ResourceGPUMem: resource.MustParse("1"), api.ResourceGPUCore: resource.MustParse("10")}, setEnv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "100")), []string{"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"}},
			{"envFrom without prefix", secPod(gpuMem(2), envFrom("")), []string{"main: envFrom configMap settings without a prefix", "give the envFrom a prefix"}},
			{"envFrom prefix CUDA_", secPod(gpuMem(2), envFrom("CUDA_")), []string{"with prefix CUDA_"}},
			{"envFrom prefix NVIDIA_VISIBLE_", secPod(gpuMem(2), envFrom("NVIDIA_VISIBLE_")), []string{"with prefix NVIDIA_VISIBLE_"}},
			{"envFrom prefix CUDA_MPS_X", secPod(gpuMem(2), envFrom("CUDA_MPS_X")), []string{"with prefix CUDA_MPS_X"}},
			{"envFrom prefix APP_ is fine", secPod(gpuMem(2), envFrom("APP_")), nil},
			{"other variables are fine", secPod(gpuMem(2), setEnv("CUDA_CACHE_PATH", "/tmp")), nil},
			{"a GPU-less container may set anything but the GPU variable", secPod(nil, setEnv("CUDA_VISIBLE_DEVICES", "0")), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectAdmission(ctx, t, c, plain, tc.pod, harness.PolicyGPUEnv, tc.want)
			})
		}
	})

	t.Run("Void", func(t *testing.T) {
		agents := secNamespace(t, c, "sec-agents", map[string]string{labelAllowAllGPUs: "true"})
		p := secPod(nil)
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
		p.Spec.Containers = append(p.Spec.Containers,
			corev1.Container{Name: "gpu", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: gpuMem(2)}},
			corev1.Container{Name: "nvidia", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}},
			// A GPU-less container that asks for every GPU gets void.
			corev1.Container{Name: "spoof", Image: "busybox", Env: []corev1.EnvVar{{Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}}},
			corev1.Container{Name: "fuse", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: fuse(nil)}},
		)
		got, err := c.Client.CoreV1().Pods(plain).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"init": "void", "main": "void", "gpu": "", "nvidia": "", "spoof": "void", "fuse": "void"}
		if diff := visibleDevices(got); fmt.Sprint(diff) != fmt.Sprint(want) {
			t.Errorf("NVIDIA_VISIBLE_DEVICES per container %v, want %v", diff, want)
		}
		// Ephemeral containers added later get it too.
		run := secPod(nil)
		run.Name = "running"
		created, err := c.Client.CoreV1().Pods(plain).Create(ctx, run, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		upd, err := c.Client.CoreV1().Pods(plain).UpdateEphemeralContainers(ctx, run.Name, created, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := envValue(upd.Spec.EphemeralContainers[0].Env, "NVIDIA_VISIBLE_DEVICES"); v != "void" {
			t.Errorf("ephemeral container: NVIDIA_VISIBLE_DEVICES %q, want void", v)
		}
		// A GPU-less container cannot ask for GPUs through valueFrom either.
		vf := secPod(nil)
		vf.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "NVIDIA_VISIBLE_DEVICES", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		if _, err := c.Client.CoreV1().Pods(plain).Create(ctx, vf, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
			t.Error("a GPU-less container with NVIDIA_VISIBLE_DEVICES from valueFrom was admitted")
		} else {
			t.Logf("valueFrom rejected: %v", err)
		}
		// Node agents keep their variable in a labelled namespace (and in
		// gpuslice's own).
		agent := secPod(nil, setEnv("NVIDIA_VISIBLE_DEVICES", "all"))
		for _, ns := range []string{agents, harness.SystemNamespace} {
			var last string
			err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				got, err := c.Client.CoreV1().Pods(ns).Create(ctx, agent.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					last = err.Error()
					return false, nil
				}
				last = envValue(got.Spec.Containers[0].Env, "NVIDIA_VISIBLE_DEVICES")
				return last == "all", nil
			})
			if err != nil {
				t.Errorf("namespace %s: node agent's NVIDIA_VISIBLE_DEVICES: %s, want all", ns, last)
			}
		}
	})

	t.Run("RequestShape", func(t *testing.T) { testRequestShape(ctx, t, c, plain) })

	t.Run("ExemptionLabelsNeedAnAdmin", func(t *testing.T) {
		tenant, err := c.TenantAdminClient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The tenant admin may create and label namespaces, but not with
		// an exemption label.
		if _, err := tenant.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sec-tenant", Labels: map[string]string{"team": "a"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("tenant admin cannot create a namespace: %v", err)
		}
		ns, err := tenant.CoreV1().Namespaces().Get(ctx, "sec-tenant", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels[labelAllowFuseWithGPU] = "true"
		_, err = tenant.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		checkDenied(t, err, harness.PolicyNamespaceExemptions, []string{"may not set or remove " + labelAllowFuseWithGPU, "namespaceexemptions.gpuslice.io"})
		// Nor remove one a cluster admin set.
		host, err := tenant.CoreV1().Namespaces().Get(ctx, "sec-host", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(host.Labels, labelAllowHostAccess)
		_, err = tenant.CoreV1().Namespaces().Update(ctx, host, metav1.UpdateOptions{})
		checkDenied(t, err, harness.PolicyNamespaceExemptions, []string{labelAllowHostAccess})
		// Other labels stay the tenant's.
		host.Labels[labelAllowHostAccess] = "true"
		host.Labels["team"] = "b"
		if _, err := tenant.CoreV1().Namespaces().Update(ctx, host, metav1.UpdateOptions{}); err != nil {
			t.Errorf("tenant admin cannot change an unrelated label: %v", err)
		}
	})
}

// testRequestShape creates pods of many request shapes (dry run) and checks
// that the request-shape policy rejects exactly those api.ParsePodRequest
// rejects, with api's message: the contract's rules are written in Go
// once and in CEL once, and this keeps the two the same.
func testRequestShape(ctx context.Context, t *testing.T, c *harness.Cluster, ns string) {
	type res = map[corev1.ResourceName]string
	mem, core, count := corev1.ResourceName(api.ResourceGPUMem), corev1.ResourceName(api.ResourceGPUCore), corev1.ResourceName(api.ResourceGPUCount)
	big := func(n int64) string { return fmt.Sprint(n) }
	cases := []struct {
		name   string
		init   res
		app    res
		models string
	}{
		{name: "valid single", app: res{mem: "4"}},
		{name: "valid split", app: res{mem: "8", core: "100", count: "2"}},
		{name: "valid whole GPUs", app: res{mem: big(api.MaxRequestSlices), core: big(api.MaxRequestCore), count: big(api.MaxRequestCount)}},
		{name: "uneven mem", app: res{mem: "3", count: "2"}},
		{name: "uneven core", app: res{mem: "4", core: "3", count: "2"}},
		{name: "count without mem", app: res{count: "2"}},
		{name: "core without mem", app: res{core: "50"}},
		{name: "core over 100 per GPU", app: res{mem: "2", core: "150"}},
		{name: "core 200 over 2 GPUs", app: res{mem: "2", core: "200", count: "2"}},
		{name: "core 202 over 2 GPUs", app: res{mem: "2", core: "202", count: "2"}},
		{name: "mem over a GPU", app: res{mem: big(api.MaxSlicesPerGPU + 1)}},
		{name: "mem at a GPU", app: res{mem: big(api.MaxSlicesPerGPU)}},
		{name: "mem too large", app: res{mem: big(api.MaxRequestSlices + 1)}},
		{name: "core too large", app: res{mem: "1", core: big(api.MaxRequestCore + 1)}},
		{name: "count too large", app: res{mem: "1", count: big(api.MaxRequestCount + 1)}},
		{name: "huge", app: res{mem: "1e18"}},
		{name: "init container breaks it", init: res{count: "1"}, app: res{mem: "1"}},
		{name: "gpu-models ok", app: res{mem: "1"}, models: "A100-SXM4-40GB, H100-80GB"},
		{name: "gpu-models empty name", app: res{mem: "1"}, models: "A100-SXM4-40GB,,H100-80GB"},
		{name: "gpu-models on a CPU pod", models: " "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := secPod(nil)
			p.Spec.Containers[0].Resources.Limits = quantities(tc.app)
			if tc.init != nil {
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: quantities(tc.init)}}}
			}
			if tc.models != "" {
				p.Annotations = map[string]string{api.AnnotationGPUModels: tc.models}
			}
			_, goErr := api.ParsePodRequest(p)
			_, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			switch {
			case goErr == nil && err != nil:
				t.Fatalf("api accepts it, the API server rejects it: %v", err)
			case goErr == nil:
			case err == nil:
				t.Fatalf("api rejects it (%v), the API server admits it", goErr)
			case !strings.Contains(err.Error(), harness.PolicyRequestShape) || !strings.Contains(err.Error(), "gpuslice: "+goErr.Error()):
				t.Fatalf("API server: %v\nwant %s saying: gpuslice: %v", err, harness.PolicyRequestShape, goErr)
			default:
				t.Logf("rejected: %v", err)
			}
		})
	}
}

func quantities(r map[corev1.ResourceName]string) corev1.ResourceList {
	if r == nil {
		return nil
	}
	out := corev1.ResourceList{}
	for k, v := range r {
		out[k] = resource.MustParse(v)
	}
	return out
}

// secNamespace creates a namespace with labels for the test.
func secNamespace(t *testing.T, c *harness.Cluster, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

type podOpt func(*corev1.Container)

func privileged(c *corev1.Container) { sc(c).Privileged = ptrTo(true) }

func caps(add ...corev1.Capability) podOpt {
	return func(c *corev1.Container) { sc(c).Capabilities = &corev1.Capabilities{Add: add} }
}

func setEnv(name, value string) podOpt {
	return func(c *corev1.Container) { c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value}) }
}

func envFrom(prefix string) podOpt {
	return func(c *corev1.Container) {
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}})
	}
}

func sc(c *corev1.Container) *corev1.SecurityContext {
	if c.SecurityContext == nil {
		c.SecurityContext = &corev1.SecurityContext{}
	}
	return c.SecurityContext
}

func ptrTo[T any](v T) *T { return &v }

func gpuMem(n int64) corev1.ResourceList {
	return corev1.ResourceList{api.ResourceGPUMem: *resource.NewQuantity(n, resource.DecimalSI)}
}

// fuse adds one gpuslice.io/fuse to a resource list.
func fuse(l corev1.ResourceList) corev1.ResourceList {
	out := l.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	out[resourceFuse] = resource.MustParse("1")
	return out
}

// secPod is a pod with one container "main" limited to lim, changed by opts.
func secPod(lim corev1.ResourceList, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: lim}}}},
	}
	for _, o := range opts {
		o(&p.Spec.Containers[0])
	}
	return p
}

// withInit adds an init container "init" (changed by opts) to p.
func withInit(p *corev1.Pod, opts ...podOpt) *corev1.Pod {
	c := corev1.Container{Name: "init", Image: "busybox"}
	for _, o := range opts {
		o(&c)
	}
	p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	return p
}

func withHostPath(p *corev1.Pod, path string) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}})
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
	return p
}

// expectAdmission dry-run creates p in ns: want nil means it must be
// admitted, else rejected by policy with a message holding every want.
func expectAdmission(ctx context.Context, t *testing.T, c *harness.Cluster, ns string, p *corev1.Pod, policy string, want []string) {
	t.Helper()
	_, err := c.Client.CoreV1().Pods(ns).Create(ctx, p.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if want == nil {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	checkDenied(t, err, policy, want)
}

func checkDenied(t *testing.T, err error, policy string, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want %s to reject it", policy)
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
		t.Fatalf("error %v, want Forbidden or Invalid", err)
	}
	for _, w := range append([]string{policy}, want...) {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("message %q does not say %q", err, w)
		}
	}
	t.Logf("rejected: %v", err)
}

// pollAllowed waits until a dry-run create of p in ns is admitted (the
// policies see namespace labels through an informer).
func pollAllowed(ctx context.Context, t *testing.T, c *harness.Cluster, ns string, p *corev1.Pod) {
	t.Helper()
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = c.Client.CoreV1().Pods(ns).Create(ctx, p.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last == nil, nil
	}); err != nil {
		t.Fatalf("namespace %s: pod not admitted: %v", ns, last)
	}
}

// visibleDevices returns every init and app container's
// NVIDIA_VISIBLE_DEVICES ("" when unset).
func visibleDevices(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			out[c.Name] = envValue(c.Env, "NVIDIA_VISIBLE_DEVICES")
		}
	}
	return out
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
