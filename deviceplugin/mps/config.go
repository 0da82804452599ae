package mps

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// Scope says which GPUs one MPS control daemon serves.
type Scope string

const (
	// ScopeGPU runs one control daemon per GPU (the default). Each daemon
	// sees only its GPU, so a daemon restart, a server that refuses clients
	// of another UID and the shared /dev/shm stay within one GPU. A container
	// can use only one CUDA_MPS_PIPE_DIRECTORY, so in this scope a container
	// gets MPS on one GPU only: ContainerEdits refuses multi-GPU containers.
	ScopeGPU Scope = "gpu"
	// ScopeNode runs one control daemon for all MPS GPUs of the node, with
	// per-device defaults. Multi-GPU containers work; the restart, UID and
	// /dev/shm domains are the whole node.
	ScopeNode Scope = "node"
)

// ShmMode says what a container's /dev/shm is under MPS.
type ShmMode string

const (
	// ShmPerDaemon mounts, as the container's /dev/shm, the directory that
	// the daemon (and the MPS server it spawns) sees as /dev/shm: one per
	// daemon, shared by every client of that daemon. NVIDIA's own device
	// plugin does the same; see docs/mps.md for the exposure.
	ShmPerDaemon ShmMode = "per-daemon"
	// ShmNone leaves /dev/shm alone (the container keeps its private one).
	// Use it where the runtime shares IPC otherwise, or to test on hardware
	// whether the driver needs the shared /dev/shm.
	ShmNone ShmMode = "none"
)

// MPS control protocol versions (Config.Version).
const (
	// VersionLegacy is legacy MPS (protocol 2): one server per UID, limits
	// in each client's environment bounded by the daemon's defaults (a
	// ceiling). The default.
	VersionLegacy = 2
	// VersionV3 is MPS v3 (protocol 3, driver r615 / CUDA 13.4): one named
	// server per daemon and a namespace per container whose limits are the
	// container's share (see v3.go).
	VersionV3 = 3
)

// Defaults of Config.
const (
	DefaultRoot                    = "/run/gpuslice/mps"
	DefaultControlBinary           = "nvidia-cuda-mps-control"
	DefaultContainerPipeDir        = "/run/gpuslice/mps"
	DefaultHealthInterval          = 10 * time.Second
	DefaultProbeTimeout            = 5 * time.Second
	DefaultMaxRestartBackoff       = 5 * time.Minute
	DefaultMaxClientPercent        = 100
	DefaultReleaseGrace            = time.Minute
	containerShmDir                = "/dev/shm"
	nodeDaemonID                   = "node"
	maxThreadPercentage            = 100
	maxClientCap                   = 60
	maxClientPriority              = 1
	clientCapVolta           int64 = 48
	clientCapPreVolta        int64 = 16
	voltaMajor                     = 7
)

// Config configures a Manager. The zero value of every field but Clock
// means its default; Clock defaults to the real clock.
type Config struct {
	// Root is the host directory under which each daemon has <Root>/<id>/pipe,
	// <Root>/<id>/log and <Root>/<id>/shm, where <id> is the GPU UUID in
	// ScopeGPU and "node" in ScopeNode. Default /run/gpuslice/mps.
	Root string
	// ControlBinary is the MPS control program. Default nvidia-cuda-mps-control.
	ControlBinary string
	// DefaultActiveThreadPercentage is the CUDA_MPS_ACTIVE_THREAD_PERCENTAGE
	// of a container that has no gpu-core share, 1..100. Default 100.
	DefaultActiveThreadPercentage int
	// HealthInterval is how often each daemon is probed with
	// get_default_active_thread_percentage. Default 10s.
	HealthInterval time.Duration
	// ProbeTimeout bounds one control-pipe round trip. Default 5s.
	ProbeTimeout time.Duration
	// ContainerPipeDir is where a daemon's pipe directory is mounted inside
	// containers (and the CUDA_MPS_PIPE_DIRECTORY they get). Default
	// /run/gpuslice/mps.
	ContainerPipeDir string
	// Clock drives probes and restart backoff. Default the real clock.
	Clock clock.WithTicker

	// Scope is ScopeGPU (default) or ScopeNode; see their docs.
	Scope Scope
	// ClientCap overrides the MPS client cap per GPU that Slots returns
	// (48 on Volta and newer, 16 before), 1..60. Raise it to 60 only where
	// the driver's CUDA accepts 60 clients. Default 0: the hardware default.
	ClientCap int64
	// MaxClientMemoryPercent sets the daemon default
	// (set_default_device_pinned_mem_limit) of each GPU to this percentage
	// of its memory: the most any client of the GPU can pin, whatever its
	// environment says. 1..100, default 100. Set it to the one share all
	// pods of the node use to make the memory limit binding (docs/mps.md).
	MaxClientMemoryPercent int
	// MaxClientThreadPercentage is the daemon default
	// (set_default_active_thread_percentage): the most threads any client
	// can use. 1..100, default 100. Same reasoning as MaxClientMemoryPercent.
	MaxClientThreadPercentage int
	// MaxRestartBackoff caps the wait between restarts of a failed daemon;
	// the wait starts at HealthInterval and doubles. Default 5m.
	MaxRestartBackoff time.Duration
	// DevShm is ShmPerDaemon (default) or ShmNone.
	DevShm ShmMode
	// MultiUserServer starts each daemon with -multiuser-server (Volta and
	// newer): clients of all Linux users connect to one root MPS server.
	// Without it the daemon runs one server per UID at a time, so a client
	// of another UID waits until every client of the running server has
	// exited. NVIDIA: enable it only where isolation between users can be
	// disregarded. Default off; see docs/mps.md.
	MultiUserServer bool
	// ReadOnlyPipeMount mounts the pipe directory read-only in containers,
	// so a tenant cannot delete or replace the daemon's sockets. Not
	// verified on hardware that MPS clients work with it; see docs/mps.md.
	ReadOnlyPipeMount bool

	// ClientPriority (v3) is the client_priority of the server's default
	// namespace and of every namespace gpuslice creates: 0 (normal, the
	// default) or 1 (below normal), per NVIDIA's "MPS v3 Interface".
	ClientPriority int
	// HardLimits (v3), when set, puts each container's gpu-mem share as
	// the kernel-enforced hard memory limit on the container's cgroup
	// (NVIDIA's "MPS v3 Memory Partitioning"; LimitContainers). Set it
	// only where the node has memory partitioning; with it, v3 GPUs
	// enforce api.EnforcementBinding, without it api.EnforcementCeiling.
	HardLimits HardLimiter

	// Version is the MPS protocol: VersionLegacy (2, default) or VersionV3
	// (3). In v3 every daemon runs one server, and every container gets a
	// namespace of its own, created in Allocate with the container's share
	// as its limits and deleted once its pod no longer holds devices.
	Version int
	// ReleaseGrace (v3) is how long a namespace is kept after it was
	// created or adopted even when its pod is not among the live pods
	// (kubelet lists a container in pod-resources only after Allocate has
	// returned). Default 1m.
	ReleaseGrace time.Duration
}

// withDefaults returns cfg with every unset field defaulted, or an error
// naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	cfg.Root = cmp.Or(cfg.Root, DefaultRoot)
	cfg.ControlBinary = cmp.Or(cfg.ControlBinary, DefaultControlBinary)
	cfg.HealthInterval = cmp.Or(cfg.HealthInterval, DefaultHealthInterval)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, DefaultProbeTimeout)
	cfg.ContainerPipeDir = cmp.Or(cfg.ContainerPipeDir, DefaultContainerPipeDir)
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	cfg.Scope = cmp.Or(cfg.Scope, ScopeGPU)
	cfg.MaxClientMemoryPercent = cmp.Or(cfg.MaxClientMemoryPercent, DefaultMaxClientPercent)
	cfg.MaxClientThreadPercentage = cmp.Or(cfg.MaxClientThreadPercentage, DefaultMaxClientPercent)
	cfg.DefaultActiveThreadPercentage = cmp.Or(cfg.DefaultActiveThreadPercentage, cfg.MaxClientThreadPercentage)
	cfg.MaxRestartBackoff = cmp.Or(cfg.MaxRestartBackoff, DefaultMaxRestartBackoff)
	cfg.DevShm = cmp.Or(cfg.DevShm, ShmPerDaemon)
	cfg.Version = cmp.Or(cfg.Version, VersionLegacy)
	cfg.ReleaseGrace = cmp.Or(cfg.ReleaseGrace, DefaultReleaseGrace)

	var errs []error
	if !filepath.IsAbs(cfg.Root) {
		errs = append(errs, fmt.Errorf("root %q: must be an absolute path", cfg.Root))
	}
	if !filepath.IsAbs(cfg.ContainerPipeDir) {
		errs = append(errs, fmt.Errorf("container pipe dir %q: must be an absolute path", cfg.ContainerPipeDir))
	}
	if filepath.Clean(cfg.ContainerPipeDir) == containerShmDir {
		errs = append(errs, fmt.Errorf("container pipe dir %q: must not be %s", cfg.ContainerPipeDir, containerShmDir))
	}
	if cfg.DefaultActiveThreadPercentage < 1 || cfg.DefaultActiveThreadPercentage > maxThreadPercentage {
		errs = append(errs, fmt.Errorf("default active thread percentage %d: must be within 1..100", cfg.DefaultActiveThreadPercentage))
	}
	if cfg.MaxClientThreadPercentage < 1 || cfg.MaxClientThreadPercentage > maxThreadPercentage {
		errs = append(errs, fmt.Errorf("max client thread percentage %d: must be within 1..100", cfg.MaxClientThreadPercentage))
	} else if cfg.DefaultActiveThreadPercentage > cfg.MaxClientThreadPercentage {
		errs = append(errs, fmt.Errorf("default active thread percentage %d: above the max client thread percentage %d, which the daemon enforces", cfg.DefaultActiveThreadPercentage, cfg.MaxClientThreadPercentage))
	}
	if cfg.MaxClientMemoryPercent < 1 || cfg.MaxClientMemoryPercent > 100 {
		errs = append(errs, fmt.Errorf("max client memory percent %d: must be within 1..100", cfg.MaxClientMemoryPercent))
	}
	if cfg.HealthInterval < 0 {
		errs = append(errs, fmt.Errorf("health interval %v: must be positive", cfg.HealthInterval))
	}
	if cfg.ProbeTimeout < 0 {
		errs = append(errs, fmt.Errorf("probe timeout %v: must be positive", cfg.ProbeTimeout))
	}
	if cfg.MaxRestartBackoff < 0 {
		errs = append(errs, fmt.Errorf("max restart backoff %v: must be positive", cfg.MaxRestartBackoff))
	}
	if cfg.ClientCap < 0 || cfg.ClientCap > maxClientCap {
		errs = append(errs, fmt.Errorf("client cap %d: must be within 1..%d (0 for the hardware default)", cfg.ClientCap, maxClientCap))
	}
	switch cfg.Scope {
	case ScopeGPU, ScopeNode:
	default:
		errs = append(errs, fmt.Errorf("scope %q: must be %q or %q", cfg.Scope, ScopeGPU, ScopeNode))
	}
	if cfg.Version != VersionLegacy && cfg.Version != VersionV3 {
		errs = append(errs, fmt.Errorf("version %d: must be %d (legacy MPS) or %d (MPS v3)", cfg.Version, VersionLegacy, VersionV3))
	}
	if cfg.ClientPriority < 0 || cfg.ClientPriority > maxClientPriority {
		errs = append(errs, fmt.Errorf("client priority %d: must be 0 (normal) or 1 (below normal)", cfg.ClientPriority))
	}
	if cfg.ReleaseGrace < 0 {
		errs = append(errs, fmt.Errorf("release grace %v: must be positive", cfg.ReleaseGrace))
	}
	switch cfg.DevShm {
	case ShmPerDaemon, ShmNone:
	default:
		errs = append(errs, fmt.Errorf("dev shm mode %q: must be %q or %q", cfg.DevShm, ShmPerDaemon, ShmNone))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid MPS config: %w", err)
	}
	return cfg, nil
}

// validUUID reports whether s may name a GPU: it becomes a path element,
// so only letters, digits and '-' (not leading) are allowed.
func validUUID(s string) bool {
	if s == "" || s[0] == '-' || s == nodeDaemonID {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// validateGPUs checks the GPUs handed to Start: MIG-enabled and pre-Volta
// GPUs are refused for MPS mode.
func validateGPUs(gpus []device.GPU) error {
	if len(gpus) == 0 {
		return errors.New("no GPUs to run MPS on")
	}

	var errs []error
	seen := make(map[string]bool, len(gpus))
	seenIndex := make(map[int]bool, len(gpus))
	for _, g := range gpus {
		switch {
		case !validUUID(g.UUID):
			errs = append(errs, fmt.Errorf("gpu %d: invalid UUID %q", g.Index, g.UUID))
			continue
		case seen[g.UUID]:
			errs = append(errs, fmt.Errorf("gpu %s: listed twice", g.UUID))
		case seenIndex[g.Index] || g.Index < 0:
			errs = append(errs, fmt.Errorf("gpu %s: index %d is negative or used twice", g.UUID, g.Index))
		case g.MIGEnabled:
			errs = append(errs, fmt.Errorf("gpu %s: MIG is enabled; MPS mode is refused on MIG-enabled GPUs (disable MIG or use another sharing mode)", g.UUID))
		case g.Major < voltaMajor:
			errs = append(errs, fmt.Errorf("gpu %s: compute capability %d.%d is older than Volta (7.0); MPS mode is refused because pre-Volta MPS has no per-client memory or thread limits and no fault containment", g.UUID, g.Major, g.MinorCC))
		case g.MemoryMiB <= 0:
			errs = append(errs, fmt.Errorf("gpu %s: memory %d MiB must be positive", g.UUID, g.MemoryMiB))
		}
		seen[g.UUID] = true
		seenIndex[g.Index] = true
	}
	return errors.Join(errs...)
}
