package mps

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// ComputeModeSetter sets a GPU's compute mode. The device plugin implements
// it with NVML. EXCLUSIVE_PROCESS is set before a daemon starts so that the
// MPS server is the only process with a context on the GPU: a client that
// bypasses MPS cannot open its own context beside it.
type ComputeModeSetter interface {
	SetExclusiveProcess(uuid string) error
}

// ComputeModeRestorer is optionally implemented by a ComputeModeSetter; Stop
// then puts each GPU back to the DEFAULT compute mode.
type ComputeModeRestorer interface {
	SetDefault(uuid string) error
}

// eventBuffer is the capacity of the Events channel. Start reports every
// GPU once; more than this many GPUs on a node is not expected.
const eventBuffer = 1024

// daemon is one MPS control daemon and the GPUs it serves.
type daemon struct {
	spec DaemonSpec
	// gpus in daemon-side index order: gpus[i] is device i for the
	// daemon's defaults.
	gpus []device.GPU

	// Guarded by Manager.mu.
	healthy bool
	reason  string
	// namespaces (v3) are the namespaces gpuslice created or adopted on
	// the daemon's server, by name.
	namespaces map[string]*namespace
}

// Manager runs and supervises the MPS control daemons of a node and computes
// each container's MPS edits. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	ctl    Control
	modes  ComputeModeSetter
	events chan device.HealthEvent

	mu      sync.Mutex
	started bool
	stopped bool
	logger  klog.Logger
	daemons []*daemon
	byUUID  map[string]*daemon
	gpus    map[string]device.GPU
	cancel  context.CancelFunc
	// ctx is Start's context (cancelled by Stop), for the control commands
	// that Allocate and the reconcile run (v3 namespaces).
	ctx context.Context
	// hardLimitFailures counts failed hard memory limits (v3_limits.go).
	hardLimitFailures uint64
	wg                sync.WaitGroup
	stopOnce          sync.Once
}

// NewManager validates cfg (unset fields take their defaults) and returns a
// Manager that runs ctl and sets compute modes with modes. A nil ctl means
// an ExecControl running cfg.ControlBinary.
func NewManager(cfg Config, ctl Control, modes ComputeModeSetter) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if ctl == nil {
		ctl = NewExecControl(cfg.ControlBinary)
	}
	if modes == nil {
		return nil, errors.New("invalid MPS manager: nil ComputeModeSetter")
	}
	return &Manager{
		cfg:    cfg,
		ctl:    ctl,
		modes:  modes,
		events: make(chan device.HealthEvent, eventBuffer),
		logger: klog.Background(),
		byUUID: map[string]*daemon{},
		gpus:   map[string]device.GPU{},
	}, nil
}

// Start refuses MIG-enabled and pre-Volta GPUs, then for each daemon (per
// GPU, or one per node; Config.Scope) sets its GPUs to EXCLUSIVE_PROCESS,
// starts `nvidia-cuda-mps-control -d` with its own pipe and log directories
// and CUDA_VISIBLE_DEVICES set to its GPUs, sets the defaults through the
// control pipe and probes it. A daemon that is already answering on its pipe
// directory (a plugin restart) is adopted, not restarted, so running clients
// are not disturbed. A daemon that fails to start leaves its GPUs unhealthy
// and is retried with backoff; Start fails only for invalid GPUs, or when no
// daemon could be started. Supervision runs until ctx ends or Stop.
func (m *Manager) Start(ctx context.Context, gpus []device.GPU) error {
	if err := validateGPUs(gpus); err != nil {
		return fmt.Errorf("refusing MPS mode: %w", err)
	}
	m.mu.Lock()
	if m.started || m.stopped {
		m.mu.Unlock()
		return errors.New("MPS manager already started or stopped")
	}
	m.started = true
	// Start itself holds the WaitGroup, so a concurrent Stop waits for it
	// before closing Events.
	m.wg.Add(1)
	logger := klog.FromContext(ctx).WithName("mps")
	m.logger = logger
	m.daemons = m.plan(gpus)
	for _, d := range m.daemons {
		d.reason = "MPS control daemon not started yet"
		for _, g := range d.gpus {
			m.byUUID[g.UUID] = d
			m.gpus[g.UUID] = g
		}
	}
	ctx, cancel := context.WithCancel(klog.NewContext(ctx, logger))
	m.cancel = cancel
	m.ctx = ctx
	m.mu.Unlock()

	var errs []error
	for _, d := range m.daemons {
		if ctx.Err() != nil {
			break // stopped while starting
		}
		err := m.bringUp(ctx, d, true)
		if err != nil {
			errs = append(errs, err)
			logger.Error(err, "MPS control daemon did not start; its GPUs stay unhealthy and it is retried", "daemon", d.spec.ID)
			m.setHealth(ctx, d, false, fmt.Sprintf("MPS control daemon did not start: %v", err))
		} else {
			m.setHealth(ctx, d, true, "")
		}
		m.wg.Add(1)
		go m.supervise(ctx, d, err != nil)
	}
	allFailed := len(errs) == len(m.daemons)
	m.wg.Done()
	if allFailed {
		m.Stop()
		return fmt.Errorf("no MPS control daemon could be started: %w", errors.Join(errs...))
	}
	return nil
}

// plan groups the GPUs into daemons according to the scope.
func (m *Manager) plan(gpus []device.GPU) []*daemon {
	sorted := slices.Clone(gpus)
	slices.SortFunc(sorted, func(a, b device.GPU) int { return a.Index - b.Index })
	newDaemon := func(id string, gs []device.GPU) *daemon {
		dir := filepath.Join(m.cfg.Root, id)
		spec := DaemonSpec{
			ID:        id,
			PipeDir:   filepath.Join(dir, "pipe"),
			LogDir:    filepath.Join(dir, "log"),
			MultiUser: m.cfg.MultiUserServer,
			Protocol:  m.cfg.Version,
		}
		if m.cfg.Version == VersionV3 {
			spec.ConfigFile = filepath.Join(dir, v3ConfigFileName)
		}
		if m.cfg.DevShm == ShmPerDaemon {
			spec.ShmDir = filepath.Join(dir, "shm")
		}
		for _, g := range gs {
			spec.VisibleDevices = append(spec.VisibleDevices, g.UUID)
		}
		return &daemon{spec: spec, gpus: gs, namespaces: map[string]*namespace{}}
	}
	if m.cfg.Scope == ScopeNode {
		return []*daemon{newDaemon(nodeDaemonID, sorted)}
	}
	ds := make([]*daemon, 0, len(sorted))
	for _, g := range sorted {
		ds = append(ds, newDaemon(g.UUID, []device.GPU{g}))
	}
	return ds
}

// memCeilingMiB is the daemon default pinned memory limit of g: the most
// any client can allocate on it.
func (m *Manager) memCeilingMiB(g device.GPU) int64 {
	return g.MemoryMiB * int64(m.cfg.MaxClientMemoryPercent) / 100
}

// defaultCommands are the control commands that set a daemon's defaults.
// Devices are addressed by the daemon-side index (the order of
// CUDA_VISIBLE_DEVICES), not by host index or UUID.
func (m *Manager) defaultCommands(d *daemon) []string {
	cmds := []string{fmt.Sprintf("set_default_active_thread_percentage %d", m.cfg.MaxClientThreadPercentage)}
	for i, g := range d.gpus {
		cmds = append(cmds, fmt.Sprintf("set_default_device_pinned_mem_limit %d %dM", i, m.memCeilingMiB(g)))
	}
	return cmds
}

// bringUp makes d's daemon run with gpuslice's defaults. With adopt, a daemon
// that already answers is kept (defaults re-applied; they reach new servers).
func (m *Manager) bringUp(ctx context.Context, d *daemon, adopt bool) error {
	if d.spec.v3() {
		return m.bringUpV3(ctx, d, adopt)
	}
	logger := klog.FromContext(ctx).WithValues("daemon", d.spec.ID)
	if err := m.prepare(d); err != nil {
		return err
	}

	adopted := false
	if adopt {
		if _, err := m.command(ctx, d, "get_default_active_thread_percentage"); err == nil {
			adopted = true
			logger.Info("Adopted a running MPS control daemon")
		}
	}
	if !adopted {
		if err := m.restartDaemon(ctx, d); err != nil {
			return fmt.Errorf("start MPS control daemon %s: %w", d.spec.ID, err)
		}
		logger.Info("Started MPS control daemon", "pipeDir", d.spec.PipeDir, "gpus", d.spec.VisibleDevices)
	}
	for _, c := range m.defaultCommands(d) {
		if _, err := m.command(ctx, d, c); err != nil {
			return fmt.Errorf("set MPS default: %w", err)
		}
	}
	// A server fault is reported by the next probe of the supervisor.
	_, err := m.probe(ctx, d)
	return err
}

// prepare sets d's GPUs to EXCLUSIVE_PROCESS and creates its directories.
func (m *Manager) prepare(d *daemon) error {
	for _, g := range d.gpus {
		if err := m.modes.SetExclusiveProcess(g.UUID); err != nil {
			return fmt.Errorf("set GPU %s to EXCLUSIVE_PROCESS compute mode: %w", g.UUID, err)
		}
	}
	dirs := []string{d.spec.PipeDir, d.spec.LogDir}
	if d.spec.ShmDir != "" {
		dirs = append(dirs, d.spec.ShmDir)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create MPS directory: %w", err)
		}
	}
	if d.spec.ShmDir != "" {
		// Like /dev/shm: clients of any UID create segments in it.
		if err := os.Chmod(d.spec.ShmDir, 0o777|os.ModeSticky); err != nil {
			return fmt.Errorf("chmod MPS shm directory: %w", err)
		}
	}
	return nil
}

// command runs one control command bounded by the probe timeout.
func (m *Manager) command(ctx context.Context, d *daemon, c string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	return m.ctl.Command(ctx, d.spec, c)
}

// probe checks that the daemon answers and still enforces gpuslice's thread
// default (a daemon restarted behind our back would have lost it); an error
// means the daemon must be restarted. It also asks for the state of the
// daemon's MPS servers: fault is non-empty while one is in FAULT, which
// needs no restart (on Volta and newer the server becomes ACTIVE again once
// the faulting clients have gone) but keeps the GPUs unhealthy meanwhile.
func (m *Manager) probe(ctx context.Context, d *daemon) (fault string, err error) {
	out, err := m.command(ctx, d, "get_default_active_thread_percentage")
	if err != nil {
		return "", fmt.Errorf("MPS control daemon does not answer: %w", err)
	}
	got, err := strconv.ParseFloat(out, 64)
	if err != nil {
		return "", fmt.Errorf("MPS control daemon answered %q to get_default_active_thread_percentage: %w", out, err)
	}
	if math.Abs(got-float64(m.cfg.MaxClientThreadPercentage)) > 0.5 {
		return "", fmt.Errorf("MPS control daemon lost its defaults: default active thread percentage is %v, want %d", got, m.cfg.MaxClientThreadPercentage)
	}
	list, err := m.command(ctx, d, "get_server_list")
	if err != nil {
		return "", fmt.Errorf("MPS control daemon does not list its servers: %w", err)
	}
	for _, pid := range strings.Fields(list) {
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		status, err := m.command(ctx, d, "get_server_status "+pid)
		if err != nil {
			// Older drivers lack get_server_status; liveness is proven above.
			klog.FromContext(ctx).V(4).Info("MPS server status unknown", "daemon", d.spec.ID, "server", pid, "err", err)
			continue
		}
		if strings.Contains(status, "FAULT") {
			return fmt.Sprintf("MPS server %s is in FAULT state: a client caused a fatal GPU fault, which MPS reports to every client sharing the GPU; new clients are refused until the faulting clients exit", pid), nil
		}
	}
	return "", nil
}

// check is the supervisor's probe of d: probe for a legacy daemon,
// probeV3 for a v3 one (which reports no server faults).
func (m *Manager) check(ctx context.Context, d *daemon) (fault string, err error) {
	if d.spec.v3() {
		return "", m.probeV3(ctx, d)
	}
	return m.probe(ctx, d)
}

// supervise probes d every HealthInterval. A daemon that fails the probe is
// marked unhealthy and restarted, with a backoff that starts at
// HealthInterval and doubles up to MaxRestartBackoff between failed
// restarts. A server in FAULT marks the GPUs unhealthy until it recovers.
func (m *Manager) supervise(ctx context.Context, d *daemon, down bool) {
	defer m.wg.Done()
	logger := klog.FromContext(ctx).WithValues("daemon", d.spec.ID)
	clk := m.cfg.Clock
	ticker := clk.NewTicker(m.cfg.HealthInterval)
	defer ticker.Stop()

	var backoff time.Duration
	var nextRestart time.Time
	if down {
		backoff = m.cfg.HealthInterval
		nextRestart = clk.Now().Add(backoff)
	}
	faulted := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
		if !down {
			fault, err := m.check(ctx, d)
			if ctx.Err() != nil {
				return
			}
			switch {
			case err == nil && fault == "":
				if faulted {
					faulted = false
					logger.Info("MPS server recovered from a fault")
					m.setHealth(ctx, d, true, "")
				}
				continue
			case err == nil:
				if !faulted {
					logger.Info("MPS server in FAULT state; GPUs unhealthy until it recovers", "reason", fault)
				}
				faulted = true
				m.setHealth(ctx, d, false, fault)
				continue
			}
			down, faulted = true, false
			backoff, nextRestart = 0, time.Time{}
			logger.Error(err, "MPS control daemon failed its health probe; restarting it")
			m.setHealth(ctx, d, false, err.Error())
		}
		if clk.Now().Before(nextRestart) {
			continue
		}
		if err := m.bringUp(ctx, d, false); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff, m.cfg.HealthInterval, m.cfg.MaxRestartBackoff)
			nextRestart = clk.Now().Add(backoff)
			logger.Error(err, "MPS control daemon restart failed", "retryIn", backoff)
			continue
		}
		down = false
		logger.Info("MPS control daemon restarted and answering")
		m.setHealth(ctx, d, true, "")
	}
}

// nextBackoff is the wait after a failed restart that followed a wait of
// prev: interval first, then doubling, never above limit.
func nextBackoff(prev, interval, limit time.Duration) time.Duration {
	return min(max(2*prev, interval), limit)
}

// faultDomain describes who is affected when d fails.
func faultDomain(d *daemon) string {
	if len(d.gpus) == 1 {
		return fmt.Sprintf("every MPS client on GPU %s is affected", d.gpus[0].UUID)
	}
	return fmt.Sprintf("every MPS client of the node daemon (GPUs %v) is affected", d.spec.VisibleDevices)
}

// setHealth records d's health and, on a change, sends one event per GPU.
func (m *Manager) setHealth(ctx context.Context, d *daemon, healthy bool, reason string) {
	if !healthy {
		reason = fmt.Sprintf("%s; %s", reason, faultDomain(d))
	}
	m.mu.Lock()
	changed := d.healthy != healthy || (!healthy && d.reason != reason)
	d.healthy, d.reason = healthy, reason
	m.mu.Unlock()
	if !changed {
		return
	}
	for _, g := range d.gpus {
		select {
		case m.events <- device.HealthEvent{UUID: g.UUID, Healthy: healthy, Reason: reason}:
		case <-ctx.Done():
			return
		}
	}
}

// Healthy reports whether uuid's daemon answers, and if not, why.
func (m *Manager) Healthy(uuid string) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.byUUID[uuid]; ok {
		return d.healthy, d.reason
	}
	return false, fmt.Sprintf("GPU %s is not managed by MPS", uuid)
}

// Events reports health changes: one event per GPU when Start brings it up
// or fails to, and on every later change. The consumer must keep draining
// it; it is closed by Stop.
func (m *Manager) Events() <-chan device.HealthEvent { return m.events }

// Group names the daemon that serves uuid: the GPUs of one container must
// all have the same group (one pipe directory per container).
func (m *Manager) Group(uuid string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.byUUID[uuid]; ok {
		return d.spec.ID, true
	}
	return "", false
}

// Mode implements device.Isolator.
func (*Manager) Mode() api.IsolationMode { return api.IsolationMPS }

var (
	_ device.Isolator            = (*Manager)(nil)
	_ device.ContainerGPULimiter = (*Manager)(nil)
	_ device.PodReleaser         = (*Manager)(nil)
	_ device.EnforcementReporter = (*Manager)(nil)
)

// Version is the configured MPS protocol (VersionLegacy or VersionV3).
func (m *Manager) Version() int { return m.cfg.Version }

// Scope is the configured daemon scope.
func (m *Manager) Scope() Scope { return m.cfg.Scope }

// MaxGPUsPerContainer is the most GPUs one container may span: 1 in
// ScopeGPU (a container has one CUDA_MPS_PIPE_DIRECTORY, so it reaches one
// daemon, which serves one GPU), 0 (no limit) in ScopeNode.
func (m *Manager) MaxGPUsPerContainer() int {
	if m.cfg.Scope == ScopeGPU {
		return 1
	}
	return 0
}

// Slots is the number of sharing slots g offers in MPS mode: the MPS client
// cap per device (48 on Volta and newer per NVIDIA's device plugin, 16
// before Volta), or Config.ClientCap when set (never above 16 before Volta).
func (m *Manager) Slots(g device.GPU) int64 {
	hw := clientCapVolta
	if g.Major < voltaMajor {
		hw = clientCapPreVolta
	}
	if m.cfg.ClientCap == 0 {
		return hw
	}
	if g.Major < voltaMajor {
		return min(m.cfg.ClientCap, hw)
	}
	return m.cfg.ClientCap
}

// Stop ends supervision, asks every daemon to quit, restores the DEFAULT
// compute mode when the ComputeModeSetter can, and closes Events. Running
// MPS clients lose their server. Stop is idempotent.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		cancel := m.cancel
		logger := m.logger
		daemons := m.daemons
		m.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		m.wg.Wait()
		restorer, canRestore := m.modes.(ComputeModeRestorer)
		for _, d := range daemons {
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ProbeTimeout)
			if err := m.ctl.StopDaemon(ctx, d.spec); err != nil {
				logger.Error(err, "Could not stop MPS control daemon", "daemon", d.spec.ID)
			}
			cancel()
			m.mu.Lock()
			d.healthy, d.reason = false, "MPS manager stopped"
			m.mu.Unlock()
			if !canRestore {
				continue
			}
			for _, g := range d.gpus {
				if err := restorer.SetDefault(g.UUID); err != nil {
					logger.Error(err, "Could not restore the DEFAULT compute mode", "gpu", g.UUID)
				}
			}
		}
		close(m.events)
	})
}

// restartDaemon stops whatever daemon answers on d's pipe directory (a
// stale one; failing to is only logged) and starts d's, each step bounded
// by the probe timeout.
func (m *Manager) restartDaemon(ctx context.Context, d *daemon) error {
	stopCtx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	if err := m.ctl.StopDaemon(stopCtx, d.spec); err != nil {
		klog.FromContext(ctx).V(2).Info("Could not stop a stale MPS control daemon", "daemon", d.spec.ID, "err", err)
	}
	cancel()
	startCtx, cancel := context.WithTimeout(ctx, 3*m.cfg.ProbeTimeout)
	defer cancel()
	return m.ctl.StartDaemon(startCtx, d.spec)
}
