package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpuslice/gpuslice/api"
)

// The admission policies of manifests/admission/ (each has a binding of
// the same name).
const (
	// PolicyAnnotations guards the gpuslice.io/* pod annotations.
	PolicyAnnotations = "gpuslice-annotations"
	// PolicyNoPresetNode rejects GPU pods created with spec.nodeName.
	PolicyNoPresetNode = "gpuslice-no-preset-node"
	// PolicyHostAccess rejects gpuslice pods that are privileged, add
	// SYS_ADMIN or mount the host's /dev.
	PolicyHostAccess = "gpuslice-host-access"
	// PolicyGPUEnv rejects GPU containers that set the GPU variables, and
	// GPU-less ones that set NVIDIA_VISIBLE_DEVICES other than void.
	PolicyGPUEnv = "gpuslice-gpu-env"
	// PolicyRequestShape rejects requests that break the resource contract.
	PolicyRequestShape = "gpuslice-request-shape"
	// PolicyNamespaceExemptions guards the gpuslice.io/allow-* namespace
	// labels.
	PolicyNamespaceExemptions = "gpuslice-namespace-exemptions"
	// PolicyGPUVisibility (a MutatingAdmissionPolicy) sets
	// NVIDIA_VISIBLE_DEVICES=void on containers that request no GPU.
	PolicyGPUVisibility = "gpuslice-gpu-visibility"
)

// ValidatingPolicies lists the shipped ValidatingAdmissionPolicies.
func ValidatingPolicies() []string {
	return []string{PolicyAnnotations, PolicyNoPresetNode, PolicyHostAccess, PolicyGPUEnv, PolicyRequestShape, PolicyNamespaceExemptions}
}

// AdmissionPolicyPath returns manifests/admission/policy.yaml of the
// checkout.
func (c *Cluster) AdmissionPolicyPath() string {
	return filepath.Join(c.repoRoot, "manifests", "admission", "policy.yaml")
}

// AdmissionDir returns manifests/admission of the checkout: every YAML
// file there is applied at start.
func (c *Cluster) AdmissionDir() string {
	return filepath.Join(c.repoRoot, "manifests", "admission")
}

// applyAdmissionPolicy creates the shipped policies and bindings (every
// file of manifests/admission/) and waits until the API server enforces
// each.
func (c *Cluster) applyAdmissionPolicy(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(c.AdmissionDir(), "*.yaml"))
	if err != nil {
		return fmt.Errorf("admission manifests: %w", err)
	}
	var names []string
	for _, f := range files {
		objs, err := DecodeManifest(f)
		if err != nil {
			return err
		}
		if err := c.CreateObjects(ctx, "", objs); err != nil {
			return err
		}
		for _, o := range objs {
			switch p := o.(type) {
			case *admissionv1.ValidatingAdmissionPolicy:
				names = append(names, p.Name)
			case *admissionv1.MutatingAdmissionPolicy:
				names = append(names, p.Name)
			}
		}
	}
	for _, p := range names {
		if err := c.waitPolicy(ctx, p, true); err != nil {
			return err
		}
	}
	return nil
}

// probePod is a pod that exactly one policy rejects (or, for the mutating
// policy, changes).
func probePod(policy string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gpuslice-admission-probe", Namespace: SystemNamespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	gpu := corev1.ResourceList{api.ResourceGPUMem: resource.MustParse("1")}
	switch policy {
	case PolicyAnnotations:
		p.Annotations = map[string]string{api.AnnotationPlacement: "{}"}
	case PolicyNoPresetNode:
		p.Spec.NodeName = "gpuslice-admission-probe"
		p.Spec.Containers[0].Resources.Limits = gpu
	case PolicyHostAccess:
		p.Spec.Containers[0].Resources.Limits = gpu
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
	case PolicyGPUEnv:
		p.Spec.Containers[0].Resources.Limits = gpu
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", Value: "0=80G"}}
	case PolicyRequestShape:
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{api.ResourceGPUMem: resource.MustParse("3"), api.ResourceGPUCount: resource.MustParse("2")}
	case PolicyGPUVisibility:
		// Created in the default namespace: gpuslice's own is exempt.
		p.Namespace = metav1.NamespaceDefault
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// PolicyEnforced reports whether the API server rejects a dry-run create
// that only the named policy forbids, or, for the mutating policy, whether
// a dry-run create of a GPU-less pod comes back with
// NVIDIA_VISIBLE_DEVICES=void.
func (c *Cluster) PolicyEnforced(ctx context.Context, policy string) (bool, error) {
	if policy == PolicyNamespaceExemptions {
		return c.namespacePolicyEnforced(ctx)
	}
	probe := probePod(policy)
	got, err := c.Client.CoreV1().Pods(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if policy == PolicyGPUVisibility {
		if err != nil {
			return false, fmt.Errorf("admission probe for %s: %w", policy, err)
		}
		for _, e := range got.Spec.Containers[0].Env {
			if e.Name == "NVIDIA_VISIBLE_DEVICES" && e.Value == "void" {
				return true, nil
			}
		}
		return false, nil
	}
	switch {
	case err == nil:
		return false, nil
	case (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && strings.Contains(err.Error(), policy):
		return true, nil
	default:
		return false, fmt.Errorf("admission probe for %s: %w", policy, err)
	}
}

// waitPolicy waits until the policy is (on) or is not (off) enforced: the
// API server's policy informers take a moment.
func (c *Cluster) waitPolicy(ctx context.Context, policy string, on bool) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := c.PolicyEnforced(ctx, policy)
		last = err
		return err == nil && got == on, nil
	})
	if err != nil {
		return fmt.Errorf("admission policy %s enforced=%v not reached: %w", policy, on, errors.Join(err, last))
	}
	return nil
}

// SuspendPolicy deletes the binding of an admission policy, waits until
// the API server no longer enforces it, and returns a function that
// re-creates the binding and waits until it is enforced again. Tests that
// show what gpuslice does when the policy is bypassed use it for one
// subtest; the restore also runs in t.Cleanup.
func (c *Cluster) SuspendPolicy(ctx context.Context, policy string) (restore func(context.Context) error, err error) {
	bindings := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	b, err := bindings.Get(ctx, policy, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get policy binding %s: %w", policy, err)
	}
	if err := bindings.Delete(ctx, policy, metav1.DeleteOptions{}); err != nil {
		return nil, fmt.Errorf("delete policy binding %s: %w", policy, err)
	}
	restore = func(ctx context.Context) error {
		nb := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: b.Name, Labels: b.Labels}, Spec: b.Spec}
		if _, err := bindings.Create(ctx, nb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("re-create policy binding %s: %w", policy, err)
		}
		return c.waitPolicy(ctx, policy, true)
	}
	if err := c.waitPolicy(ctx, policy, false); err != nil {
		return nil, errors.Join(err, restore(ctx))
	}
	c.logf("harness: admission policy %s suspended", policy)
	return restore, nil
}

// TenantAdmin is a user the harness lets create and update namespaces
// (as a namespace-as-a-service controller might let tenants), and nothing
// else: the namespace-exemptions policy must stop it from setting the
// gpuslice.io/allow-* labels.
const TenantAdmin = "gpuslice-e2e-tenant-admin"

// TenantAdminClient returns a client that impersonates TenantAdmin,
// creating its ClusterRole and binding the first time.
func (c *Cluster) TenantAdminClient(ctx context.Context) (kubernetes.Interface, error) {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: TenantAdmin},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "update", "patch"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: TenantAdmin},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: TenantAdmin},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: TenantAdmin}},
	}
	if err := c.CreateObjects(ctx, "", []runtime.Object{role, binding}); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: TenantAdmin}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant admin client: %w", err)
	}
	return cs, nil
}

// namespacePolicyEnforced reports whether the tenant admin's dry-run create
// of a namespace with an exemption label is rejected by the policy.
func (c *Cluster) namespacePolicyEnforced(ctx context.Context) (bool, error) {
	cs, err := c.TenantAdminClient(ctx)
	if err != nil {
		return false, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gpuslice-admission-probe", Labels: map[string]string{"gpuslice.io/allow-host-access": "true"}}}
	_, err = cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), PolicyNamespaceExemptions):
		return true, nil
	case apierrors.IsForbidden(err):
		// RBAC of the fresh ClusterRole not seen yet.
		return false, nil
	default:
		return false, fmt.Errorf("admission probe for %s: %w", PolicyNamespaceExemptions, err)
	}
}
