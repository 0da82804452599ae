package mps

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// ContainerEdits returns the MPS environment and mounts of a container that
// holds devs:
//   - CUDA_MPS_PIPE_DIRECTORY=Config.ContainerPipeDir and a mount of the
//     pipe directory of the daemon serving devs there;
//   - CUDA_MPS_PINNED_DEVICE_MEM_LIMIT with one "<containerIndex>=<MiB>M"
//     per device, e.g. "0=4096M,1=4096M";
//   - CUDA_MPS_ACTIVE_THREAD_PERCENTAGE from the gpu-core share (the
//     smallest over devs: the variable is per process, not per device), or
//     Config.DefaultActiveThreadPercentage when there is none;
//   - with ShmPerDaemon, the daemon's shm directory as /dev/shm.
//
// It fails for no devices, an unknown GPU, zero or negative memory, memory
// above the GPU or above the daemon's per-client ceiling, a percentage
// outside 0..100 or above the daemon's ceiling, a GPU whose daemon is down,
// GPUs served by different daemons (ScopeGPU with several GPUs), and
// duplicate GPUs or container indices.
func (m *Manager) ContainerEdits(devs []device.ContainerDevice) (*device.ContainerEdits, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.Version == VersionV3 {
		return nil, errors.New("MPS container edits: MPS v3 creates a namespace per container and needs the container's name (ContainerEditsFor)")
	}
	r, err := m.resolve(devs)
	if err != nil {
		return nil, err
	}
	edits := &device.ContainerEdits{
		Envs: map[string]string{
			EnvPipeDirectory:          m.cfg.ContainerPipeDir,
			EnvPinnedDeviceMemLimit:   strings.Join(r.limits, ","),
			EnvActiveThreadPercentage: strconv.Itoa(r.threads),
		},
		Mounts: []device.Mount{{ContainerPath: m.cfg.ContainerPipeDir, HostPath: r.d.spec.PipeDir, ReadOnly: m.cfg.ReadOnlyPipeMount}},
	}
	if r.d.spec.ShmDir != "" {
		edits.Mounts = append(edits.Mounts, device.Mount{ContainerPath: containerShmDir, HostPath: r.d.spec.ShmDir})
	}
	return edits, nil
}

// resolved is a container's devices checked against the Manager's GPUs.
type resolved struct {
	// d is the daemon serving every device.
	d *daemon
	// limits are the "<containerIndex>=<MiB>M" memory limits in container
	// index order; mem are the same limits in MiB.
	limits []string
	mem    []int64
	// threads is the container's thread percentage (the smallest share,
	// or the default).
	threads int
}

// resolve checks devs for ContainerEdits and ContainerEditsFor; the caller
// holds m.mu.
func (m *Manager) resolve(devs []device.ContainerDevice) (resolved, error) {
	if len(devs) == 0 {
		return resolved{}, errors.New("MPS container edits: no devices")
	}
	if m.stopped {
		return resolved{}, errors.New("MPS container edits: the MPS manager is stopped")
	}

	var d *daemon
	seenUUID := map[string]bool{}
	seenIndex := map[int]bool{}
	threads := 0
	sorted := slices.Clone(devs)
	slices.SortFunc(sorted, func(a, b device.ContainerDevice) int { return a.ContainerIndex - b.ContainerIndex })
	limits := make([]string, 0, len(sorted))
	mem := make([]int64, 0, len(sorted))
	for _, dev := range sorted {
		g, ok := m.gpus[dev.UUID]
		if !ok {
			return resolved{}, fmt.Errorf("MPS container edits: unknown GPU %q: not managed by MPS on this node", dev.UUID)
		}
		switch {
		case seenUUID[dev.UUID]:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s listed twice", dev.UUID)
		case dev.ContainerIndex < 0 || seenIndex[dev.ContainerIndex]:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: container index %d is negative or used twice", dev.UUID, dev.ContainerIndex)
		case dev.HostIndex != g.Index:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: host index %d, but the GPU has index %d", dev.UUID, dev.HostIndex, g.Index)
		case dev.MemLimitMiB <= 0:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: memory limit %d MiB must be positive (a container in MPS mode needs a gpu-mem share)", dev.UUID, dev.MemLimitMiB)
		case dev.MemLimitMiB > g.MemoryMiB:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: memory limit %d MiB exceeds the GPU's %d MiB", dev.UUID, dev.MemLimitMiB, g.MemoryMiB)
		case dev.MemLimitMiB > m.memCeilingMiB(g):
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: memory limit %d MiB exceeds the MPS per-client ceiling of %d MiB (%d%% of the GPU); the daemon would cap the container below its share", dev.UUID, dev.MemLimitMiB, m.memCeilingMiB(g), m.cfg.MaxClientMemoryPercent)
		case dev.ThreadPercentage < 0 || dev.ThreadPercentage > maxThreadPercentage:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: thread percentage %d must be within 0..100", dev.UUID, dev.ThreadPercentage)
		case dev.ThreadPercentage > m.cfg.MaxClientThreadPercentage:
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: thread percentage %d exceeds the MPS per-client ceiling of %d; the daemon would cap the container below its share", dev.UUID, dev.ThreadPercentage, m.cfg.MaxClientThreadPercentage)
		}
		seenUUID[dev.UUID] = true
		seenIndex[dev.ContainerIndex] = true

		gd := m.byUUID[dev.UUID]
		if d == nil {
			d = gd
		} else if gd != d {
			return resolved{}, fmt.Errorf("MPS container edits: GPUs %s and %s are served by different MPS control daemons (scope %q) and a container can use only one MPS pipe directory; run the MPS manager with scope %q to serve multi-GPU containers", d.spec.VisibleDevices[0], dev.UUID, m.cfg.Scope, ScopeNode)
		}
		if !gd.healthy {
			return resolved{}, fmt.Errorf("MPS container edits: GPU %s: its MPS control daemon is down: %s", dev.UUID, gd.reason)
		}

		pct := dev.ThreadPercentage
		if pct == 0 {
			pct = m.cfg.DefaultActiveThreadPercentage
		}
		if threads == 0 || pct < threads {
			threads = pct
		}
		mem = append(mem, dev.MemLimitMiB)
		limits = append(limits, strconv.Itoa(dev.ContainerIndex)+"="+strconv.FormatInt(dev.MemLimitMiB, 10)+"M")
	}
	return resolved{d: d, limits: limits, mem: mem, threads: threads}, nil
}
