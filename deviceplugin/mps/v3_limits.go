package mps

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
)

// HardLimiter puts hard memory limits on a container's cgroup
// (*dmem.Enforcer).
type HardLimiter interface {
	Apply(ctx context.Context, c dmem.Container, limits []dmem.GPULimit) (changed bool, err error)
}

var (
	_ HardLimiter             = (*dmem.Enforcer)(nil)
	_ device.ContainerLimiter = (*Manager)(nil)
)

// Enforcement is what the Manager's GPUs enforce on a container's share.
// Legacy MPS: a ceiling (the client's environment sets its limits; the
// daemon defaults bound them). MPS v3 with Config.HardLimits: binding, the
// container reaching only its namespace's socket (its compute limit) and
// its cgroup carrying its memory share as the kernel-enforced hard limit.
// MPS v3 without it: a ceiling, because NVIDIA's Dynamo guide ("Per-GPU
// Compute and Memory Limits with MPS") shows a client dropping every pinned
// memory limit, its namespace's included, by naming an invisible GPU in
// CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, and points to the dmem limit where
// enforcement matters.
func (m *Manager) Enforcement() api.Enforcement {
	if m.cfg.Version == VersionV3 && m.cfg.HardLimits != nil {
		return api.EnforcementBinding
	}
	return api.EnforcementCeiling
}

// limitTarget is one running container with a namespace, and its limits.
type limitTarget struct {
	c      device.RunningContainer
	limits []dmem.GPULimit
}

// targets finds the namespaces of running: each container's GPUs (an
// adopted namespace: its daemon's) with its pinned memory limit in bytes.
// Containers without a namespace, or whose namespace was adopted without
// limits, are left out.
func (m *Manager) targets(running []device.RunningContainer) []limitTarget {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []limitTarget
	for _, c := range running {
		name, err := NamespaceName(c.ContainerRef)
		if err != nil {
			continue
		}
		for _, d := range m.daemons {
			ns, ok := d.namespaces[name]
			if !ok || ns.memMiB <= 0 {
				continue
			}
			uuids := ns.gpus
			if uuids == nil {
				uuids = d.spec.VisibleDevices
			}
			t := limitTarget{c: c}
			for _, u := range uuids {
				t.limits = append(t.limits, dmem.GPULimit{
					GPU:   dmem.GPU{UUID: u, PCIBusID: m.gpus[u].PCIBusID},
					Bytes: uint64(ns.memMiB) << 20,
				})
			}
			out = append(out, t)
		}
	}
	return out
}

// LimitContainers implements device.ContainerLimiter: in MPS v3 with
// Config.HardLimits, every running container with a namespace gets its
// memory share, per GPU, as the hard limit of its cgroup (NVIDIA's "MPS v3
// Memory Partitioning": set on the container's own leaf cgroup, found after
// the container started). A limit already in place is only read back; one
// that differs is set again. A container whose cgroup is not there yet is
// tried again at the next call; other failures are logged and counted
// (HardLimitFailures), never fatal.
func (m *Manager) LimitContainers(ctx context.Context, running []device.RunningContainer) {
	if m.cfg.Version != VersionV3 || m.cfg.HardLimits == nil {
		return
	}
	logger := klog.FromContext(ctx).WithName("mps")
	for _, t := range m.targets(running) {
		kv := []any{"podUID", t.c.PodUID, "container", t.c.Container, "containerID", t.c.ContainerID}
		changed, err := m.cfg.HardLimits.Apply(ctx, dmem.Container{
			PodUID: t.c.PodUID, QOSClass: corev1.PodQOSClass(t.c.QOSClass), ContainerID: t.c.ContainerID,
		}, t.limits)
		switch {
		case errors.Is(err, dmem.ErrNoCgroup):
			logger.V(2).Info("Container cgroup not found yet; its hard memory limit is set at a later reconcile", append(kv, "err", err)...)
		case err != nil:
			m.mu.Lock()
			m.hardLimitFailures++
			m.mu.Unlock()
			logger.Error(err, "Could not set the hard memory limit of a container's cgroup; retried at the next reconcile", kv...)
		case changed:
			logger.Info("Set the hard memory limit of a container's cgroup", append(kv, "limitBytes", t.limits[0].Bytes, "gpus", len(t.limits))...)
		}
	}
}

// HardLimitFailures counts the LimitContainers calls that failed to set or
// read back a container's hard memory limit.
func (m *Manager) HardLimitFailures() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hardLimitFailures
}
