// Package kube owns the device plugin's adapters to the outside world:
// the pod cache of this node (a client-go informer), pod and node annotation
// writes through the API server, and the client of kubelet's pod-resources
// API. Each satisfies a small interface of package deviceplugin, which tests
// replace with fakes.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// PodCache lists the pods bound to one node from an informer.
type PodCache struct {
	factory informers.SharedInformerFactory
	lister  corelisters.PodLister
	synced  cache.InformerSynced
}

// NewPodCache returns a cache of the pods whose spec.nodeName is node.
func NewPodCache(client kubernetes.Interface, node string, resync time.Duration) *PodCache {
	f := informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := f.Core().V1().Pods()
	return &PodCache{factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced}
}

// Start starts the informer and waits for its first list.
func (c *PodCache) Start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return fmt.Errorf("pod cache did not sync: %w", ctx.Err())
	}
	return nil
}

// Shutdown waits for the informer to stop; cancel Start's context first.
func (c *PodCache) Shutdown() { c.factory.Shutdown() }

// ListPods implements deviceplugin.PodLister.
func (c *PodCache) ListPods() ([]*corev1.Pod, error) {
	pods, err := c.lister.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list cached pods: %w", err)
	}
	return pods, nil
}

// Client writes annotations through the API server.
type Client struct{ Kube kubernetes.Interface }

type metaPatch struct {
	Metadata struct {
		UID         types.UID         `json:"uid,omitempty"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// PatchPodAnnotations implements deviceplugin.PodPatcher: one merge patch
// that also carries the UID, so it fails on a re-created pod of that name.
func (c Client) PatchPodAnnotations(ctx context.Context, namespace, name string, uid types.UID, annotations map[string]string) error {
	var p metaPatch
	p.Metadata.UID = uid
	p.Metadata.Annotations = annotations
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	if _, err := c.Kube.CoreV1().Pods(namespace).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// NodeAnnotation implements deviceplugin.NodeAnnotator.
func (c Client) NodeAnnotation(ctx context.Context, node, key string) (string, error) {
	n, err := c.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get node %s: %w", node, err)
	}
	return n.Annotations[key], nil
}

// PatchNodeAnnotation implements deviceplugin.NodeAnnotator.
func (c Client) PatchNodeAnnotation(ctx context.Context, node, key, value string) error {
	var p metaPatch
	p.Metadata.Annotations = map[string]string{key: value}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch node %s: %w", node, err)
	}
	return nil
}

// PodResourcesClient is a client of kubelet's pod-resources API.
type PodResourcesClient struct {
	conn    *grpc.ClientConn
	client  podresourcesv1.PodResourcesListerClient
	timeout time.Duration
}

// maxPodResourcesMsg is the largest List answer accepted (kubelet's own
// client uses 16 MiB).
const maxPodResourcesMsg = 16 << 20

// NewPodResourcesClient connects (lazily) to the pod-resources socket.
func NewPodResourcesClient(socket string, timeout time.Duration) (*PodResourcesClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxPodResourcesMsg)))
	if err != nil {
		return nil, fmt.Errorf("pod-resources client for %s: %w", socket, err)
	}
	return &PodResourcesClient{conn: conn, client: podresourcesv1.NewPodResourcesListerClient(conn), timeout: timeout}, nil
}

// List implements deviceplugin.PodResources.
func (c *PodResourcesClient) List(ctx context.Context) ([]*podresourcesv1.PodResources, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.client.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("pod-resources List: %w", err)
	}
	return resp.GetPodResources(), nil
}

// Close closes the connection.
func (c *PodResourcesClient) Close() error { return c.conn.Close() }
