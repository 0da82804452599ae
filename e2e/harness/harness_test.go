package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuslice/gpuslice/api"
)

// TestControlPlane starts etcd and kube-apiserver only, creates a simulated
// node, checks what it looks like, and checks that Stop leaves no process.
func TestControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := Start(t, Options{WithoutScheduler: true})

	info, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("kube-apiserver /version: gitVersion=%s major=%s minor=%s", info.GitVersion, info.Major, info.Minor)

	inv := T4x4().Inventory("t4-0", 1024)
	if err := inv.Validate(); err != nil {
		t.Fatalf("inventory: %v", err)
	}
	n, err := c.AddGPUNode(ctx, GPUNode{Name: "t4-0", Inventory: inv, Labels: map[string]string{"x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Status.Allocatable[api.ResourceGPUMem]; got.Value() != 64 {
		t.Errorf("gpu-mem allocatable = %v, want 64", got.String())
	}
	if got := n.Status.Allocatable[api.ResourceGPUCount]; got.Value() != 4*48 {
		t.Errorf("gpu-count allocatable = %v, want 192", got.String())
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
	}
	if !ready || len(n.Spec.Taints) != 0 || n.Labels["x"] != "y" {
		t.Errorf("node not ready / tainted / unlabelled: %+v %+v", n.Status.Conditions, n.Spec.Taints)
	}
	got, err := api.ParseInventory(n.Annotations[api.AnnotationInventory])
	if err != nil || len(got.GPUs) != 4 || got.GPUs[1].Links[0].Type != api.LinkPCIeSwitch {
		t.Errorf("inventory annotation = %+v, %v", got, err)
	}

	// The admission policy is enforced, and the gpuslice service accounts
	// authenticate with their TokenRequest tokens.
	for _, p := range []string{PolicyAnnotations, PolicyNoPresetNode} {
		if on, err := c.PolicyEnforced(ctx, p); !on || err != nil {
			t.Errorf("policy %s enforced = %v, %v", p, on, err)
		}
	}
	for who, cl := range map[string]kubernetes.Interface{ExtenderServiceAccount: c.ExtenderClient, DevicePluginSAUser: c.DevicePluginClient} {
		ssr, err := cl.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil || ssr.Status.UserInfo.Username != who {
			t.Errorf("client of %s authenticates as %+v, %v", who, ssr, err)
		}
	}

	// The extender's RBAC from manifests/rbac.yaml is in place.
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Get(ctx, "gpuslice-extender", metav1.GetOptions{}); err != nil {
		t.Errorf("rbac.yaml not applied: %v", err)
	}

	pids := c.Pids()
	c.Stop()
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop: %v", name, pid, err)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s not removed: %v", c.Dir, err)
	}
}

func TestSchedulerConfigTemplate(t *testing.T) {
	c := &Cluster{Dir: t.TempDir(), ExtenderURL: "https://127.0.0.1:12345/"}
	if err := c.resolveRoot(); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.ExtenderTLS, err = writeExtenderTLS(c.Dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(c.Dir, "cfg.yaml")
	if err := c.writeSchedulerConfig(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"urlPrefix: https://127.0.0.1:12345/", "kubeconfig: " + filepath.Join(c.Dir, "scheduler.kubeconfig"),
		"enableHTTPS: true", "certFile: " + c.ExtenderTLS.ClientCert, "keyFile: " + c.ExtenderTLS.ClientKey, "caFile: " + c.ExtenderTLS.CAFile,
		"nodeCacheCapable: true", "bindVerb: bind",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("templated config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, shippedExtenderURL) || strings.Contains(s, shippedKubeconfig) {
		t.Errorf("shipped addresses left in:\n%s", s)
	}
}

func TestMissingBinaries(t *testing.T) {
	_, err := New(context.Background(), Options{K8sBin: t.TempDir(), GPUSliceBin: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make control-plane") {
		t.Fatalf("New without binaries: %v, want an error that says how to build them", err)
	}
}

func TestShapes(t *testing.T) {
	for _, s := range []Shape{A100x8(), H100x8(), T4x4()} {
		inv := s.Inventory("n", 1024)
		if err := inv.Validate(); err != nil {
			t.Errorf("%s: %v", s.Model, err)
		}
		if inv.GPUs[0].Slices != s.MemoryMiB/1024 || len(inv.GPUs[0].Links) != s.GPUs-1 {
			t.Errorf("%s: gpu0 = %+v", s.Model, inv.GPUs[0])
		}
	}
	a, b := A100x8().Inventory("a", 1024), A100x8().Inventory("b", 1024)
	if a.GPUs[0].UUID == b.GPUs[0].UUID {
		t.Errorf("UUIDs repeat across nodes: %s", a.GPUs[0].UUID)
	}
}
