// Package health owns GPU health for the gpuslice device plugin: it turns
// NVML Xid critical-error events and GPUs that stop answering (lost, fallen
// off the bus, removed) into per-GPU healthy / unhealthy state with a reason,
// and recovers a GPU when its error class allows.
//
// Error classes (see XidClass):
//   - application Xids (13, 31, 43, 45, 68, 109) are caused by a user program
//     and are ignored, as NVIDIA's own device plugin does;
//   - transient Xids (63, 64, 92, 94) mark the GPU unhealthy for a hold-down
//     period and it recovers when no further event arrives;
//   - every other Xid is fatal: the GPU stays unhealthy until it disappears
//     and comes back (driver reload or GPU reset), which the probe observes;
//   - a GPU that does not answer the probe is unhealthy while it is gone and
//     recovers (clearing any fatal Xid) when it answers again.
package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/nvml"
	"github.com/gpuslice/gpuslice/internal/tick"
)

// Class is how an Xid affects a GPU.
type Class int

// Xid classes.
const (
	ClassApplication Class = iota
	ClassTransient
	ClassFatal
)

// XidClass returns the class of an Xid.
func XidClass(xid uint64) Class {
	switch xid {
	case 13, 31, 43, 45, 68, 109:
		return ClassApplication
	case 63, 64, 92, 94:
		return ClassTransient
	}
	return ClassFatal
}

// Prober tells whether a GPU still answers (nvml.Discovery implements it).
type Prober interface {
	Probe(uuid string) error
}

// Config tunes the monitor.
type Config struct {
	// ProbeInterval is how often every GPU is probed.
	ProbeInterval time.Duration
	// TransientHold is how long a transient Xid keeps a GPU unhealthy.
	TransientHold time.Duration
	// EventWait is how long one NVML event wait blocks (it bounds how
	// quickly Run notices cancellation).
	EventWait time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ProbeInterval: 10 * time.Second, TransientHold: 5 * time.Minute, EventWait: 5 * time.Second}
}

type gpuState struct {
	lost           string
	fatal          string
	transient      string
	transientUntil time.Time
	healthy        bool
	reason         string
}

// Monitor tracks the health of a fixed set of GPUs.
type Monitor struct {
	lib   nvml.Library
	probe Prober
	clock clock.WithTicker
	cfg   Config
	uuids []string

	mu    sync.Mutex
	state map[string]*gpuState
	out   chan device.HealthEvent
}

// NewMonitor returns a monitor of the GPUs with these UUIDs, all healthy.
func NewMonitor(lib nvml.Library, probe Prober, clk clock.WithTicker, cfg Config, uuids []string) *Monitor {
	m := &Monitor{lib: lib, probe: probe, clock: clk, cfg: cfg, uuids: uuids,
		state: make(map[string]*gpuState, len(uuids)), out: make(chan device.HealthEvent, 64)}
	for _, u := range uuids {
		m.state[u] = &gpuState{healthy: true}
	}
	return m
}

// Events returns the channel of health changes. Slow readers do not block
// the monitor for long: Status always has the current state.
func (m *Monitor) Events() <-chan device.HealthEvent { return m.out }

// Status returns the GPU's current health and, when unhealthy, why.
func (m *Monitor) Status(uuid string) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.state[uuid]
	if !ok {
		return false, "unknown GPU"
	}
	return s.healthy, s.reason
}

// update recomputes s and reports the change, if any. Called with mu held;
// the returned event is sent by the caller after unlocking.
func (m *Monitor) update(uuid string, s *gpuState) *device.HealthEvent {
	now := m.clock.Now()
	if s.transient != "" && !now.Before(s.transientUntil) {
		s.transient = ""
	}
	reason := s.lost
	if reason == "" {
		reason = s.fatal
	}
	if reason == "" {
		reason = s.transient
	}
	healthy := reason == ""
	if healthy == s.healthy && reason == s.reason {
		return nil
	}
	s.healthy, s.reason = healthy, reason
	return &device.HealthEvent{UUID: uuid, Healthy: healthy, Reason: reason}
}

func (m *Monitor) emit(ctx context.Context, evs []*device.HealthEvent) {
	logger := klog.FromContext(ctx)
	for _, e := range evs {
		if e == nil {
			continue
		}
		logger.Info("GPU health changed", "gpu", e.UUID, "healthy", e.Healthy, "reason", e.Reason)
		select {
		case m.out <- *e:
		case <-ctx.Done():
			return
		}
	}
}

// HandleXid applies one Xid critical-error event.
func (m *Monitor) HandleXid(ctx context.Context, uuid string, xid uint64) {
	class := XidClass(xid)
	if class == ClassApplication {
		klog.FromContext(ctx).V(2).Info("Ignoring application Xid", "gpu", uuid, "xid", xid)
		return
	}
	m.mu.Lock()
	s, ok := m.state[uuid]
	if !ok {
		m.mu.Unlock()
		return
	}
	reason := fmt.Sprintf("Xid %d", xid)
	if class == ClassFatal {
		s.fatal = reason + " (fatal: needs a GPU reset)"
	} else {
		s.transient = reason + " (transient)"
		s.transientUntil = m.clock.Now().Add(m.cfg.TransientHold)
	}
	ev := m.update(uuid, s)
	m.mu.Unlock()
	m.emit(ctx, []*device.HealthEvent{ev})
}

// ProbeAll probes every GPU once and expires transient errors.
func (m *Monitor) ProbeAll(ctx context.Context) {
	var evs []*device.HealthEvent
	for _, u := range m.uuids {
		err := m.probe.Probe(u)
		m.mu.Lock()
		s := m.state[u]
		switch {
		case err == nil && s.lost != "":
			// The GPU came back: a reset or reload happened, which also
			// clears a fatal Xid.
			s.lost, s.fatal = "", ""
		case err != nil && nvml.IsLost(err):
			s.lost = "GPU lost: " + err.Error()
		case err != nil:
			s.lost = "GPU probe failed: " + err.Error()
		}
		evs = append(evs, m.update(u, s))
		m.mu.Unlock()
	}
	m.emit(ctx, evs)
}

// Run watches Xid events and probes the GPUs until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	var wg sync.WaitGroup
	if set, err := m.registerEvents(ctx); err != nil {
		logger.Error(err, "Xid events unavailable; relying on probes only")
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.eventLoop(ctx, set)
		}()
	}
	tick.Run(ctx, m.clock.NewTicker(m.cfg.ProbeInterval), func() { m.ProbeAll(ctx) })
	wg.Wait()
	return nil
}

func (m *Monitor) registerEvents(ctx context.Context) (gonvml.EventSet, error) {
	set, ret := m.lib.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("create NVML event set: %s", gonvml.ErrorString(ret))
	}
	for _, u := range m.uuids {
		dev, ret := m.lib.DeviceGetHandleByUUID(u)
		if ret != gonvml.SUCCESS {
			klog.FromContext(ctx).Info("Cannot watch Xid events of GPU", "gpu", u, "err", gonvml.ErrorString(ret))
			continue
		}
		if ret := dev.RegisterEvents(gonvml.EventTypeXidCriticalError, set); ret != gonvml.SUCCESS {
			klog.FromContext(ctx).Info("Cannot watch Xid events of GPU", "gpu", u, "err", gonvml.ErrorString(ret))
		}
	}
	return set, nil
}

func (m *Monitor) eventLoop(ctx context.Context, set gonvml.EventSet) {
	logger := klog.FromContext(ctx)
	defer func() { _ = set.Free() }()
	wait := uint32(m.cfg.EventWait / time.Millisecond)
	for ctx.Err() == nil {
		data, ret := set.Wait(wait)
		switch {
		case ret == gonvml.ERROR_TIMEOUT:
			continue
		case ret != gonvml.SUCCESS:
			logger.V(2).Info("NVML event wait failed", "err", gonvml.ErrorString(ret))
			// Back off one probe interval through the clock; never spin.
			select {
			case <-ctx.Done():
			case <-m.clock.After(m.cfg.ProbeInterval):
			}
			continue
		}
		if data.EventType != gonvml.EventTypeXidCriticalError || data.Device == nil {
			continue
		}
		uuid, ret := data.Device.GetUUID()
		if ret != gonvml.SUCCESS {
			logger.Info("Xid event for a GPU without UUID", "xid", data.EventData)
			continue
		}
		m.HandleXid(ctx, uuid, data.EventData)
	}
}
