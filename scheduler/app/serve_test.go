package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2/ktesting"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// slowPods is a clientset whose pod lists wait for release: the pod
// informer then syncs only when the test says, long after the node one.
type slowPods struct {
	kubernetes.Interface
	release <-chan struct{}
}

// IsWatchListSemanticsUnSupported makes the informers list, as with the
// fake clientset itself (which does not send the watch-list bookmark).
func (slowPods) IsWatchListSemanticsUnSupported() bool { return true }

func (c slowPods) CoreV1() corev1client.CoreV1Interface {
	return slowCore{c.Interface.CoreV1(), c.release}
}

type slowCore struct {
	corev1client.CoreV1Interface
	release <-chan struct{}
}

func (c slowCore) Pods(ns string) corev1client.PodInterface {
	return slowPodList{c.CoreV1Interface.Pods(ns), c.release}
}

type slowPodList struct {
	corev1client.PodInterface
	release <-chan struct{}
}

func (p slowPodList) List(ctx context.Context, opts metav1.ListOptions) (*v1.PodList, error) {
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.PodInterface.List(ctx, opts)
}

// boundPod returns a pod bound to node with a placement of slices on its
// first GPU, as an earlier extender process left it.
func boundPod(t *testing.T, name, node, inventory string, slices int64) *v1.Pod {
	t.Helper()
	c := cache.New(ktesting.NewLogger(t, ktesting.NewConfig()), 1024, time.Minute)
	c.SetNode(node, inventory)
	pl, _, err := testutil.Assume(t, c, "x", node, testutil.Request(slices))
	if err != nil {
		t.Fatal(err)
	}
	s, err := pl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p := testutil.Pod(name, testutil.Container("c", slices, 0, 0))
	p.Spec.NodeName = node
	p.Annotations = map[string]string{api.AnnotationPlacement: s}
	return p
}

// A restarted extender must not decide before its pod cache is complete:
// with the node informer synced and the pod list still loading, filter is
// refused with the retryable "not ready"; once the pods are in, filter sees
// the GPU shares the bound pod holds.
func TestServeGatesVerbsUntilCachesSync(t *testing.T) {
	node := testutil.GPUNode(t, "n1", 1, "T4", 16, 48)
	held := boundPod(t, "held", "n1", node.Annotations[api.AnnotationInventory], 10)
	release := make(chan struct{})
	base := "http://" + startServe(t, NewOptions(), Deps{Client: slowPods{fake.NewClientset(node, held), release}, Version: "test"})
	newPod := testutil.Pod("new", testutil.Container("c", 10, 0, 0))
	args := extenderv1.ExtenderArgs{Pod: newPod, NodeNames: &[]string{"n1"}}

	testutil.Poll(t, "the server to answer /healthz", func() bool {
		code, _ := get(base + "/healthz")
		return code == 200
	})
	code, body := post(t, base+"/filter", args)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"not ready: `) {
		t.Fatalf("filter before the pod list = %d %s, want 503 not ready", code, body)
	}
	t.Log("Releasing the pod list")
	close(release)
	testutil.Poll(t, "/readyz to pass", func() bool {
		code, _ := get(base + "/readyz")
		return code == 200
	})
	code, body = post(t, base+"/filter", args)
	var res extenderv1.ExtenderFilterResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("filter after sync = %d %s (%v)", code, body, err)
	}
	if _, full := res.FailedNodes["n1"]; !full || len(*res.NodeNames) != 0 {
		t.Fatalf("filter after sync kept %v, failed %v: the held pod's 10 of 16 slices are not counted", *res.NodeNames, res.FailedNodes)
	}
}

// --metrics-listen-address serves /metrics alone on a second, plain
// listener.
func TestServeMetricsListener(t *testing.T) {
	mln := listen(t)
	startServe(t, NewOptions(), Deps{MetricsListener: mln, Version: "test"})
	base := "http://" + mln.Addr().String()
	testutil.Poll(t, "the metrics listener to say ready", func() bool {
		code, body := get(base + "/metrics")
		return code == 200 && strings.Contains(body, "gpuslice_extender_ready 1")
	})
	if code, _ := get(base + "/filter"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("the metrics listener answers /filter with %d; it must serve /metrics only", code)
	}
}
