package kube

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

func TestClientAnnotations(t *testing.T) {
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1", Annotations: map[string]string{"keep": "1"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	cs := fake.NewClientset(pod, node)
	c := Client{Kube: cs}
	if err := c.PatchPodAnnotations(ctx, "ns", "p", "u1", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"keep": "1", "a": "b"}, got.Annotations); diff != "" {
		t.Errorf("pod annotations (-want +got):\n%s", diff)
	}
	if err := c.PatchNodeAnnotation(ctx, "n", "k", "v"); err != nil {
		t.Fatal(err)
	}
	v, err := c.NodeAnnotation(ctx, "n", "k")
	if err != nil || v != "v" {
		t.Fatalf("node annotation %q, %v", v, err)
	}
	if _, err := c.NodeAnnotation(ctx, "missing", "k"); err == nil {
		t.Fatal("annotation of a missing node")
	}
}

func TestPodCache(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	mine := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mine"}, Spec: corev1.PodSpec{NodeName: "n"}}
	cs := fake.NewClientset(mine)
	c := NewPodCache(cs, "n", 0)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		c.Shutdown()
	}()
	pods, err := c.ListPods()
	if err != nil || len(pods) != 1 || pods[0].Name != "mine" {
		t.Fatalf("pods %v, %v", pods, err)
	}
}

type fakePRServer struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	resp *podresourcesv1.ListPodResourcesResponse
}

func (f *fakePRServer) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	return f.resp, nil
}

func TestPodResourcesClient(t *testing.T) {
	dir, err := os.MkdirTemp("", "pr")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	sock := filepath.Join(dir, "kubelet.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	want := []*podresourcesv1.PodResources{{Name: "p", Namespace: "ns", Containers: []*podresourcesv1.ContainerResources{{
		Name: "c", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "gpuslice.io/gpu-mem", DeviceIds: []string{"GPU-1::mem-0"}}},
	}}}}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, &fakePRServer{resp: &podresourcesv1.ListPodResourcesResponse{PodResources: want}})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	c, err := NewPodResourcesClient(sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	got, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
