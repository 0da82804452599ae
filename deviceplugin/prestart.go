package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
)

// PreStart verifies, before a container starts, that the gpu-mem devices
// ids went to a container whose environment is the one Allocate returned:
// the container pod-resources says holds them must have a usable placement,
// all its devices on as many GPUs as it asks, and the response prepared for
// it (kubelet may have admitted interchangeable pods in another order).
func (b *Broker) PreStart(ctx context.Context, ids []string) error {
	start := time.Now()
	err := b.preStart(ctx, ids)
	b.obs.metrics.PreStart(time.Since(start), err)
	if err != nil {
		b.refused(ctx, EventPreStartRefused, "PreStart", err)
	}
	return err
}

func (b *Broker) preStart(ctx context.Context, ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	logger := klog.FromContext(ctx)
	s, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	sorted := slices.Sorted(slices.Values(ids))
	owner := s.prOwner[sorted[0]]
	entry := b.ledgerMem(sorted)
	if owner == nil || entry == nil {
		// Allocated before this process started, or pod-resources is
		// unavailable: nothing this process handed out to compare with.
		logger.V(2).Info("PreStart without a record to verify", "devices", len(ids))
		return nil
	}
	refuse := func(err error) error { return &refusal{pod: owner.pod, err: err} }
	if owner.cp == nil {
		return refuse(fmt.Errorf("gpuslice: %s holds gpu-mem devices but %s", owner.key, owner.noPlacement))
	}
	gpus := owner.haveGPUs()
	for _, k := range Kinds() {
		if owner.req[k] > 0 && int64(len(owner.have[k])) != owner.req[k] {
			return refuse(fmt.Errorf("gpuslice: %s has %d %s devices, want %d", owner.key, len(owner.have[k]), k.Resource(), owner.req[k]))
		}
	}
	if len(gpus) != owner.gpus {
		return refuse(fmt.Errorf("gpuslice: %s got devices on GPUs %v, want %d GPU(s) with every resource on the same GPUs", owner.key, gpus, owner.gpus))
	}
	d, err := b.distribution(KindMem, ids)
	if err != nil {
		return refuse(fmt.Errorf("gpuslice: %w", err))
	}
	want, _, err := b.respond(owner, d)
	if err != nil {
		return refuse(err)
	}
	if !proto.Equal(want, entry.resp) {
		return refuse(fmt.Errorf("gpuslice: %s was given the environment prepared for %s (kubelet admitted them in another order and their shares differ); refusing to start it with the wrong limits: delete the pod to retry", owner.key, entry.key))
	}
	entry.key = owner.key
	return nil
}
