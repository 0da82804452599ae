package harness

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The namespace and service accounts gpuslice runs as (the admission
// policy in manifests/admission exempts exactly these two users).
const (
	SystemNamespace          = "gpuslice-system"
	ExtenderSAName           = "gpuslice-extender"
	DevicePluginSAName       = "gpuslice-device-plugin"
	ExtenderServiceAccount   = "system:serviceaccount:" + SystemNamespace + ":" + ExtenderSAName
	DevicePluginSAUser       = "system:serviceaccount:" + SystemNamespace + ":" + DevicePluginSAName
	serviceAccountTokenHours = 24
)

// identityObjects are the namespace, the two service accounts and their
// least-privilege RBAC: the extender reads nodes and pods, binds pods
// (pods/binding; the Binding carries the placement), records events and
// holds its leader-election lease; the device plugin reads and patches pods
// (placement hand-off and allocation record) and reads and patches nodes
// (the inventory annotation).
func identityObjects() []runtime.Object {
	sa := func(name string) *corev1.ServiceAccount {
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: SystemNamespace}}
	}
	subject := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: SystemNamespace}}
	}
	role := func(name string, rules ...rbacv1.PolicyRule) []runtime.Object {
		crName := "gpuslice-e2e:" + name
		return []runtime.Object{
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: crName}, Rules: rules},
			&rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: crName},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: crName},
				Subjects:   subject(name),
			},
		}
	}
	read := []string{"get", "list", "watch"}
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}},
		sa(ExtenderSAName), sa(DevicePluginSAName),
	}
	objs = append(objs, role(ExtenderSAName,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: read},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/binding"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	)...)
	objs = append(objs,
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "gpuslice-e2e:extender-lease", Namespace: SystemNamespace},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "gpuslice-e2e:extender-lease", Namespace: SystemNamespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "gpuslice-e2e:extender-lease"},
			Subjects:   subject(ExtenderSAName),
		})
	objs = append(objs, role(DevicePluginSAName,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: append(read, "patch")},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: append(read, "patch")},
		rbacv1.PolicyRule{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	)...)
	return objs
}

// serviceAccountToken asks the API server for a token of a gpuslice
// service account (TokenRequest), as a projected token volume would.
func (c *Cluster) serviceAccountToken(ctx context.Context, name string) (string, error) {
	exp := int64(serviceAccountTokenHours * 3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", SystemNamespace, name, err)
	}
	return tr.Status.Token, nil
}

// setUpIdentities creates the gpuslice namespace, service accounts and
// RBAC, and writes token kubeconfigs for the extender and the device plugin.
func (c *Cluster) setUpIdentities(ctx context.Context, caPEM []byte) error {
	if err := c.CreateObjects(ctx, SystemNamespace, identityObjects()); err != nil {
		return err
	}
	for _, id := range []struct {
		sa   string
		file string
		cfg  **rest.Config
		cl   *kubernetes.Interface
	}{
		{ExtenderSAName, "extender.kubeconfig", &c.ExtenderConfig, &c.ExtenderClient},
		{DevicePluginSAName, "device-plugin.kubeconfig", &c.DevicePluginConfig, &c.DevicePluginClient},
	} {
		tok, err := c.serviceAccountToken(ctx, id.sa)
		if err != nil {
			return err
		}
		if err := writeKubeconfig(c.path(id.file), c.APIServerURL, caPEM, id.sa, tok); err != nil {
			return err
		}
		cfg := rest.CopyConfig(c.RESTConfig)
		cfg.BearerToken, cfg.BearerTokenFile = tok, ""
		cfg.UserAgent = "gpuslice-e2e-as-" + id.sa
		cl, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("client for %s: %w", id.sa, err)
		}
		*id.cfg, *id.cl = cfg, cl
	}
	c.extenderKube = c.path("extender.kubeconfig")
	return nil
}
