package dmem

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// GPU names one GPU whose hard limit is set.
type GPU struct {
	UUID string
	// PCIBusID locates the GPU's dmem region (GPURegion).
	PCIBusID string
}

// Limiter sets and reads the hard device-memory limit of one GPU for the
// cgroup directory dir (an absolute path). HardLimit reports unlimited as
// ok false.
type Limiter interface {
	SetHardLimit(ctx context.Context, dir string, g GPU, bytes uint64) error
	HardLimit(ctx context.Context, dir string, g GPU) (bytes uint64, ok bool, err error)
}

// FileLimiter writes and reads dmem.max of the kernel's dmem controller
// directly, resolving each GPU's region from Root's dmem.capacity. See the
// package doc for when this is right.
type FileLimiter struct {
	// Root is the cgroup v2 root holding dmem.capacity.
	Root string
}

// region returns g's region name.
func (l FileLimiter) region(g GPU) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.Root, CapacityFile))
	if err != nil {
		return "", fmt.Errorf("read dmem capacity: %w", err)
	}
	regions, err := ParseCapacity(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", CapacityFile, err)
	}
	return GPURegion(regions, g.PCIBusID)
}

// SetHardLimit writes "<region> <bytes>" to dir/dmem.max (the kernel
// takes one region per write).
func (l FileLimiter) SetHardLimit(_ context.Context, dir string, g GPU, bytes uint64) error {
	name, err := l.region(g)
	if err != nil {
		return fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	line := Region{Name: name, Bytes: bytes}.line()
	f, err := os.OpenFile(filepath.Join(dir, MaxFile), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	_, werr := f.WriteString(line)
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("hard limit of GPU %s: write %s: %w", g.UUID, MaxFile, werr)
	}
	return nil
}

// HardLimit reads g's line of dir/dmem.max; a region the file does not
// list is unlimited.
func (l FileLimiter) HardLimit(_ context.Context, dir string, g GPU) (uint64, bool, error) {
	name, err := l.region(g)
	if err != nil {
		return 0, false, fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, MaxFile))
	if err != nil {
		return 0, false, fmt.Errorf("hard limit of GPU %s: %w", g.UUID, err)
	}
	regions, err := ParseMax(b)
	if err != nil {
		return 0, false, fmt.Errorf("hard limit of GPU %s: %s of %s: %w", g.UUID, MaxFile, dir, err)
	}
	for _, r := range regions {
		if r.Name == name {
			return r.Bytes, !r.Max, nil
		}
	}
	return 0, false, nil
}
