package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// memorySlices is the share of each placed pod of phase M.
const memorySlices = 4

// placedPod is pod i of phase M, created already bound with a placement
// annotation as the extender would have written it: pod i goes to node
// i mod nodes, on that node's GPU (i / nodes) mod 8. These pods are what an
// extender that restarts finds; the phase measures the extender's memory
// with them in its cache, not how fast they were placed.
func placedPod(i int, invs []*api.Inventory) (*corev1.Pod, error) {
	p := benchPod(i)
	p.Name = fmt.Sprintf("m-%06d", i)
	node := i % len(invs)
	gpus := invs[node].GPUs
	g := gpus[(i/len(invs))%len(gpus)]
	p.Spec.NodeName = nodeName(node)
	p.Spec.Containers[0].Resources.Limits[api.ResourceGPUMem] = *resource.NewQuantity(memorySlices, resource.DecimalSI)
	pl := &api.Placement{Version: api.PlacementVersion, Node: p.Spec.NodeName, AssignedAt: time.Now().UTC().Truncate(time.Second),
		Containers: []api.ContainerPlacement{{Name: "main", Devices: []api.DeviceShare{{UUID: g.UUID, Index: g.Index, Slices: memorySlices, Slots: 1}}}}}
	req, err := api.ParsePodRequest(p)
	if err != nil {
		return nil, err
	}
	if err := pl.ConsistentWith(req, p.Spec.NodeName); err != nil {
		return nil, fmt.Errorf("bench placement: %w", err)
	}
	s, err := pl.Encode()
	if err != nil {
		return nil, err
	}
	p.Annotations = map[string]string{api.AnnotationPlacement: s}
	return p, nil
}

// createPlacedPods creates n placed pods in ns, with the admission
// policies that forbid an admin to preset a node or write the placement
// annotation suspended for the phase (and restored before it returns).
func createPlacedPods(ctx context.Context, c *harness.Cluster, client kubernetes.Interface, ns string, n, workers int, invs []*api.Inventory) (err error) {
	for _, policy := range []string{harness.PolicyAnnotations, harness.PolicyNoPresetNode} {
		restore, err2 := c.SuspendPolicy(ctx, policy)
		if err2 != nil {
			return fmt.Errorf("suspend %s: %w", policy, err2)
		}
		defer func() { err = errors.Join(err, restore(context.WithoutCancel(ctx))) }()
	}
	return parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		p, err := placedPod(i, invs)
		if err != nil {
			return err
		}
		if _, err := client.CoreV1().Pods(ns).Create(ctx, p, createOpts); err != nil {
			return fmt.Errorf("create %s: %w", p.Name, err)
		}
		return nil
	})
}

// waitCachePods polls the extender's metrics until its cache holds n pods.
func waitCachePods(ctx context.Context, s *scraper, n int, timeout time.Duration) error {
	var last float64
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		mf, err := s.scrape(ctx)
		if err != nil {
			return false, nil //nolint:nilerr // retried until the deadline
		}
		last = sum(mf, metrics.CachePods)
		return int(last) >= n, nil
	})
	if err != nil {
		return fmt.Errorf("extender cache holds %.0f pods, want %d: %w", last, n, err)
	}
	return nil
}
