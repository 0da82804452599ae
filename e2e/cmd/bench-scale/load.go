package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// podSizes are the gpu-mem requests (1 GiB slices) the pods cycle through:
// shares of 2.5% to 50% of an 80 GiB GPU.
var podSizes = [...]int64{2, 4, 8, 10, 16, 20, 40}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// createNodes creates the simulated nodes (DGX H100 shape) and returns the
// inventories, node i's at i.
func createNodes(ctx context.Context, c *harness.Cluster, n, workers int) ([]*api.Inventory, error) {
	shape := harness.H100x8()
	invs := make([]*api.Inventory, n)
	for i := range invs {
		invs[i] = shape.Inventory(nodeName(i), c.SliceMiB)
	}
	err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		_, err := c.AddGPUNode(ctx, harness.GPUNode{Name: nodeName(i), Inventory: invs[i]})
		return err
	})
	if err != nil {
		return nil, err
	}
	return invs, nil
}

func nodeName(i int) string { return fmt.Sprintf("gpu-%05d", i) }

// benchPod is pod i of a phase: one container asking for a share of one
// GPU.
func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%06d", i)},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
					api.ResourceGPUMem: *resource.NewQuantity(podSizes[i%len(podSizes)], resource.DecimalSI),
				}},
			}},
		},
	}
}

// createNamespace creates ns (it may exist from an earlier phase of the
// same cluster).
func createNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return nil
}

// bindWatch records when each pod of a namespace is first seen bound.
type bindWatch struct {
	mu    sync.Mutex
	bound map[string]time.Time
	last  time.Time
	done  chan struct{} // closed when want pods are bound
	want  int
	stop  context.CancelFunc
}

// watchBindings starts an informer on the pods of ns.
func watchBindings(ctx context.Context, client kubernetes.Interface, ns string, want int) (*bindWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &bindWatch{bound: make(map[string]time.Time, want), done: make(chan struct{}), want: want, stop: cancel}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	see := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			w.saw(p.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    see,
		UpdateFunc: func(_, obj any) { see(obj) },
	}); err != nil {
		cancel()
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod informer of %s did not sync", ns)
	}
	return w, nil
}

func (w *bindWatch) saw(name string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.bound[name]; ok {
		return
	}
	w.bound[name] = now
	w.last = now
	if len(w.bound) == w.want {
		close(w.done)
	}
}

// wait blocks until every pod is bound, and returns the time of the last
// binding.
func (w *bindWatch) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bound) < w.want {
		return time.Time{}, fmt.Errorf("%d of %d pods bound after %v", len(w.bound), w.want, timeout)
	}
	return w.last, nil
}

// deletePods deletes every pod of ns (grace 0: no kubelet runs them) and
// waits until the API server lists none. A DeleteCollection of thousands of
// pods may outlast the API server's request timeout while it goes on
// deleting, so a failed call is repeated until the namespace is empty.
func deletePods(ctx context.Context, client kubernetes.Interface, ns string) error {
	zero := int64(0)
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil && len(l.Items) == 0 {
			return true, nil
		}
		lastErr = client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("delete pods of %s: %w (last DeleteCollection: %w)", ns, err, lastErr)
	}
	return nil
}
