package dmem

import (
	"context"
	"errors"
	"fmt"
)

// GPULimit is the hard limit one container must have on one GPU.
type GPULimit struct {
	GPU   GPU
	Bytes uint64
}

// Enforcer puts hard limits on containers' cgroups.
type Enforcer struct {
	// Root is the cgroup v2 root the containers' cgroups are found under
	// (DefaultRoot, or the host's as the plugin sees it).
	Root    string
	Limiter Limiter
}

// Apply makes c's cgroup carry limits: each GPU whose hard limit differs
// (or is unset) is set and read back. changed says something was set. A
// container without a cgroup directory yet wraps ErrNoCgroup. The errors of
// all GPUs are joined.
func (e *Enforcer) Apply(ctx context.Context, c Container, limits []GPULimit) (changed bool, err error) {
	dir, err := ContainerDir(e.Root, c)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, l := range limits {
		if got, ok, err := e.Limiter.HardLimit(ctx, dir, l.GPU); err == nil && ok && got == l.Bytes {
			continue
		}
		if err := e.Limiter.SetHardLimit(ctx, dir, l.GPU, l.Bytes); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.ContainerID, err))
			continue
		}
		changed = true
		got, ok, err := e.Limiter.HardLimit(ctx, dir, l.GPU)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("container %s: read back: %w", c.ContainerID, err))
		case !ok || got != l.Bytes:
			errs = append(errs, fmt.Errorf("container %s: hard limit of GPU %s reads back as %d (limited %v), want %d", c.ContainerID, l.GPU.UUID, got, ok, l.Bytes))
		}
	}
	return changed, errors.Join(errs...)
}
