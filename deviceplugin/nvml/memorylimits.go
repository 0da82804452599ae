package nvml

import (
	"context"
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
)

// MemoryLimits sets and reads a cgroup's hard device-memory limit through
// NVML (nvmlDeviceSetMemoryLimits_v1 / nvmlDeviceGetMemoryLimits_v1), the
// path NVIDIA's "MPS v3 Memory Partitioning" asks for: the driver resolves
// the GPU's region and serves both the kernel's dmem backend and its own
// misc one. It implements dmem.Limiter. The soft limit is always 0 (see
// package dmem).
type MemoryLimits struct{ Lib Library }

var _ dmem.Limiter = MemoryLimits{}

func (l MemoryLimits) device(uuid string) (gonvml.Device, error) {
	dev, ret := l.Lib.DeviceGetHandleByUUID(uuid)
	if err := nvErr("DeviceGetHandleByUUID", ret); err != nil {
		return nil, err
	}
	return dev, nil
}

// SetHardLimit sets g's hard limit for the cgroup directory dir to bytes,
// with no soft limit. Setting needs root.
func (l MemoryLimits) SetHardLimit(_ context.Context, dir string, g dmem.GPU, bytes uint64) error {
	dev, err := l.device(g.UUID)
	if err != nil {
		return fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	if err := nvErr("SetMemoryLimits_v1", dev.SetMemoryLimits_v1(dir, 0, bytes)); err != nil {
		return fmt.Errorf("hard limit of GPU %s on %s: %w", g.UUID, dir, err)
	}
	return nil
}

// HardLimit reads g's hard limit for dir; DEVICE_MEMORY_LIMIT_MAX (no
// limit) is ok false.
func (l MemoryLimits) HardLimit(_ context.Context, dir string, g dmem.GPU) (uint64, bool, error) {
	dev, err := l.device(g.UUID)
	if err != nil {
		return 0, false, fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	got, ret := dev.GetMemoryLimits_v1(dir)
	if err := nvErr("GetMemoryLimits_v1", ret); err != nil {
		return 0, false, fmt.Errorf("hard limit of GPU %s on %s: %w", g.UUID, dir, err)
	}
	if got.HardLimit == gonvml.DEVICE_MEMORY_LIMIT_MAX {
		return 0, false, nil
	}
	return got.HardLimit, true, nil
}
