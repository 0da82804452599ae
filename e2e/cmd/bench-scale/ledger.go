package main

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuslice/gpuslice/api"
)

// audit is the end-of-phase check of the extender's placements, computed
// from the API server's pods, independently of the extender.
type audit struct {
	// Overcommitted is the number of GPUs whose charged slices, core
	// units or slots exceed their capacity.
	Overcommitted int
	// Unplaced is the number of bound pods without a valid placement
	// annotation that matches their node.
	Unplaced int
}

// err fails the benchmark on any violation, after its figures are printed.
func (a audit) err() error {
	if a.Overcommitted > 0 || a.Unplaced > 0 {
		return fmt.Errorf("phase B: %d GPUs over-committed, %d bound pods without a valid placement", a.Overcommitted, a.Unplaced)
	}
	return nil
}

// auditPlacements charges every bound pod of ns on the GPUs its placement
// names (the bench's pods have one container, so the charge is the share)
// and compares with the GPUs' capacity.
func auditPlacements(ctx context.Context, client kubernetes.Interface, ns string, gpus map[string]api.GPU) (audit, error) {
	var a audit
	used := map[string]api.Units{}
	opts := metav1.ListOptions{Limit: 5000}
	for {
		l, err := client.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return a, fmt.Errorf("list pods of %s: %w", ns, err)
		}
		for i := range l.Items {
			p := &l.Items[i]
			if p.Spec.NodeName == "" {
				continue
			}
			pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
			if err != nil || pl.Node != p.Spec.NodeName {
				a.Unplaced++
				continue
			}
			for _, c := range pl.Containers {
				for _, d := range c.Devices {
					used[d.UUID] = used[d.UUID].Add(d.Units())
				}
			}
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	for uuid, u := range used {
		g, ok := gpus[uuid]
		if !ok || !u.Fits(api.Units{Slices: g.Slices, Core: g.CoreUnits, Slots: g.Slots}) {
			a.Overcommitted++
		}
	}
	return a, nil
}
