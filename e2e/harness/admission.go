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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gpuslice/gpuslice/api"
)

// The admission policies of manifests/admission/policy.yaml (each has a
// binding of the same name).
const (
	// PolicyAnnotations guards the gpuslice.io/* pod annotations.
	PolicyAnnotations = "gpuslice-annotations"
	// PolicyNoPresetNode rejects GPU pods created with spec.nodeName.
	PolicyNoPresetNode = "gpuslice-no-preset-node"
)

// AdmissionPolicyPath returns manifests/admission/policy.yaml of the
// checkout.
func (c *Cluster) AdmissionPolicyPath() string {
	return filepath.Join(c.repoRoot, "manifests", "admission", "policy.yaml")
}

// applyAdmissionPolicy creates the shipped policies and bindings and waits
// until the API server enforces both.
func (c *Cluster) applyAdmissionPolicy(ctx context.Context) error {
	objs, err := DecodeManifest(c.AdmissionPolicyPath())
	if err != nil {
		return err
	}
	if err := c.CreateObjects(ctx, "", objs); err != nil {
		return err
	}
	for _, p := range []string{PolicyAnnotations, PolicyNoPresetNode} {
		if err := c.waitPolicy(ctx, p, true); err != nil {
			return err
		}
	}
	return nil
}

// probePod is a pod that exactly one policy rejects.
func probePod(policy string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gpuslice-admission-probe", Namespace: SystemNamespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	switch policy {
	case PolicyAnnotations:
		p.Annotations = map[string]string{api.AnnotationPlacement: "{}"}
	case PolicyNoPresetNode:
		p.Spec.NodeName = "gpuslice-admission-probe"
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{api.ResourceGPUMem: resource.MustParse("1")}
	}
	return p
}

// PolicyEnforced reports whether the API server rejects a dry-run create
// that only the named policy forbids.
func (c *Cluster) PolicyEnforced(ctx context.Context, policy string) (bool, error) {
	_, err := c.Client.CoreV1().Pods(SystemNamespace).Create(ctx, probePod(policy), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
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
