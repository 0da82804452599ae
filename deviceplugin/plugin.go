package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/metrics"
)

// Discoverer finds the node's GPUs (nvml.Discovery).
type Discoverer interface {
	Discover(ctx context.Context) ([]device.GPU, error)
}

// HealthSource watches GPU health (health.Monitor).
type HealthSource interface {
	Run(ctx context.Context) error
	Events() <-chan device.HealthEvent
}

// NodeAnnotator reads and writes one node annotation.
type NodeAnnotator interface {
	NodeAnnotation(ctx context.Context, node, key string) (string, error)
	PatchNodeAnnotation(ctx context.Context, node, key, value string) error
}

// Deps are the plugin's collaborators; main wires the real ones, tests fakes.
type Deps struct {
	Discoverer Discoverer
	// NewHealth returns the health source of the served GPUs; nil disables
	// NVML health.
	NewHealth    func(uuids []string) HealthSource
	Isolator     device.Isolator
	Pods         PodLister
	PodResources PodResources
	Patcher      PodPatcher
	Nodes        NodeAnnotator
	Clock        clock.WithTicker
	// Metrics, when set, counts kubelet's calls and the reconcile and
	// reports the served GPUs at scrape time.
	Metrics *metrics.Metrics
	// Events, when set, records refused calls on their pods and GPU
	// health changes on the node.
	Events events.EventRecorder
	// Memory, when set, reads NVML's memory use of a GPU for the metrics.
	Memory MemoryReader
}

// MemoryReader reads a GPU's memory use (nvml.Discovery).
type MemoryReader interface {
	MemoryInfo(uuid string) (used, total uint64, err error)
}

// Plugin is the device plugin.
type Plugin struct {
	cfg  Config
	deps Deps

	state   *State
	broker  *Broker
	servers *servers
}

// New validates the configuration and returns a plugin.
func New(cfg Config, deps Deps) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Discoverer == nil || deps.Isolator == nil || deps.Pods == nil || deps.Patcher == nil || deps.Nodes == nil || deps.Clock == nil {
		return nil, errors.New("device plugin: missing dependency")
	}
	return &Plugin{cfg: cfg, deps: deps}, nil
}

// BuildGPUs turns discovered GPUs into served GPUs: MIG-enabled GPUs are
// skipped (logged), links to skipped GPUs dropped, capacity computed from
// the slice size and the isolator's slots: the GPU's memory in slices, or,
// for an isolator that hands out whole instances (device.WholeInstancer),
// Slots * (InstanceMiB / SliceMiB), GPUs without instances skipped. It
// fails when a ListAndWatch message would be too large.
func BuildGPUs(ctx context.Context, found []device.GPU, sliceMiB int64, iso device.Isolator) ([]GPUState, error) {
	logger := klog.FromContext(ctx)
	var gpus []GPUState
	served := map[int]bool{}
	for _, g := range found {
		if g.MIGEnabled {
			logger.Info("Skipping MIG-enabled GPU: gpuslice does not share MIG GPUs", "gpu", g.UUID, "index", g.Index)
			continue
		}
		st := GPUState{GPU: g, Slices: g.MemoryMiB / sliceMiB}
		st.Slots = iso.Slots(g)
		if wi, ok := iso.(device.WholeInstancer); ok {
			inst, ok := wi.Instances(g)
			if !ok {
				logger.Info("Skipping GPU without instances", "gpu", g.UUID, "index", g.Index, "pciBusID", g.PCIBusID)
				continue
			}
			st.Isolation, st.VGPUType, st.InstanceMiB = inst.Mode, inst.VGPUType, inst.InstanceMiB
			if inst.MemoryMiB > 0 && st.MemoryMiB <= 0 {
				st.MemoryMiB = inst.MemoryMiB
			}
			st.Slices = st.Slots * (inst.InstanceMiB / sliceMiB)
		}
		if st.Slices <= 0 || st.Slots <= 0 {
			logger.Info("Skipping GPU without capacity", "gpu", g.UUID, "memoryMiB", g.MemoryMiB, "sliceMiB", sliceMiB, "slots", st.Slots)
			continue
		}
		gpus = append(gpus, st)
		served[g.Index] = true
	}
	for i := range gpus {
		gpus[i].Links = slices.DeleteFunc(slices.Clone(gpus[i].Links), func(l api.Link) bool { return !served[l.Peer] })
	}
	for _, k := range Kinds() {
		size, err := CheckMessageSize(gpus, k)
		if err != nil {
			return nil, err
		}
		logger.V(2).Info("ListAndWatch message size", "resource", k.Resource(), "bytes", size)
	}
	return gpus, nil
}

// Setup discovers the GPUs, starts the isolator and builds the state.
func (p *Plugin) Setup(ctx context.Context) error {
	found, err := p.deps.Discoverer.Discover(ctx)
	if err != nil {
		return fmt.Errorf("discover GPUs: %w", err)
	}
	var isoGPUs []device.GPU
	for _, g := range found {
		if !g.MIGEnabled {
			isoGPUs = append(isoGPUs, g)
		}
	}
	if err := p.deps.Isolator.Start(ctx, isoGPUs); err != nil {
		return fmt.Errorf("start %s isolation: %w", p.deps.Isolator.Mode(), err)
	}
	if pr, ok := p.deps.Isolator.(device.ProblemReporter); ok {
		obs := p.observers()
		for _, problem := range pr.Problems() {
			klog.FromContext(ctx).Info("Isolation problem", "mode", p.deps.Isolator.Mode(), "problem", problem)
			obs.isolationProblem(problem)
		}
	}
	gpus, err := BuildGPUs(ctx, found, p.cfg.SliceMiB, p.deps.Isolator)
	if err != nil {
		return err
	}
	p.state = NewState(gpus)
	for _, g := range gpus {
		if ok, why := p.deps.Isolator.Healthy(g.UUID); !ok {
			p.state.SetHealth(g.UUID, SourceIsolator, false, why)
		}
	}
	p.broker = NewBroker(&p.cfg, p.state, p.deps.Isolator, p.deps.Pods, p.deps.PodResources)
	p.broker.obs = p.observers()
	p.servers = &servers{cfg: &p.cfg, state: p.state, broker: p.broker}
	p.deps.Metrics.SetSource(p.metricsSource())
	served, _ := p.state.Snapshot()
	for _, g := range served {
		if !g.Healthy {
			p.broker.obs.healthChanged(g)
		}
	}
	return nil
}

func (p *Plugin) observers() observers {
	return observers{metrics: p.deps.Metrics, events: p.deps.Events, node: p.cfg.NodeName}
}

// metricsSource is what the metrics collector reads at scrape time.
func (p *Plugin) metricsSource() metrics.Source {
	state, iso, mem := p.state, p.deps.Isolator, p.deps.Memory
	src := metrics.Source{GPUs: func() []metrics.GPU {
		gpus, _ := state.Snapshot()
		out := make([]metrics.GPU, len(gpus))
		for i, g := range gpus {
			out[i] = metrics.GPU{Index: g.Index, UUID: g.UUID, Model: g.Model, Healthy: g.Healthy}
		}
		return out
	}}
	if iso.Mode() == api.IsolationMPS {
		src.MPSDaemon = func(uuid string) (bool, bool) {
			ok, _ := iso.Healthy(uuid)
			return ok, true
		}
	}
	if mem != nil {
		src.Memory = func(uuid string) (uint64, uint64, bool) {
			used, total, err := mem.MemoryInfo(uuid)
			return used, total, err == nil
		}
	}
	return src
}

// State returns the GPU state (after Setup).
func (p *Plugin) State() *State { return p.state }

// Broker returns the hand-off broker (after Setup).
func (p *Plugin) Broker() *Broker { return p.broker }

// PublishInventory writes the node's inventory annotation if it differs.
func (p *Plugin) PublishInventory(ctx context.Context) error {
	inv := p.state.Inventory(p.cfg.SliceMiB, p.deps.Isolator.Mode(), p.cfg.Capabilities)
	inv.MaxGPUsPerContainer = device.MaxGPUsPerContainer(p.deps.Isolator)
	if er, ok := p.deps.Isolator.(device.EnforcementReporter); ok {
		for i := range inv.GPUs {
			if inv.GPUs[i].Isolation == p.deps.Isolator.Mode() {
				inv.GPUs[i].Enforcement = er.Enforcement()
			}
		}
	}
	inv.Problems = inventoryProblems(p.deps.Isolator)
	enc, err := inv.Encode()
	if err != nil {
		return err
	}
	cur, err := p.deps.Nodes.NodeAnnotation(ctx, p.cfg.NodeName, api.AnnotationInventory)
	if err != nil {
		return fmt.Errorf("read inventory of node %s: %w", p.cfg.NodeName, err)
	}
	if cur == enc {
		return nil
	}
	if err := p.deps.Nodes.PatchNodeAnnotation(ctx, p.cfg.NodeName, api.AnnotationInventory, enc); err != nil {
		return fmt.Errorf("publish inventory of node %s: %w", p.cfg.NodeName, err)
	}
	klog.FromContext(ctx).Info("Published GPU inventory", "node", p.cfg.NodeName)
	return nil
}

// forwardHealth records every event of one health source in the state
// until ctx ends or the source closes its channel.
func (p *Plugin) forwardHealth(ctx context.Context, source string, events <-chan device.HealthEvent) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			if p.state.SetHealth(e.UUID, source, e.Healthy, e.Reason) {
				if g, ok := p.state.GPU(e.UUID); ok {
					p.broker.obs.healthChanged(g)
				}
			}
		}
	}
}

// Run sets the plugin up and serves until ctx is done. Running containers
// are never touched: a restarted plugin re-advertises the same device IDs
// and rebuilds its view from pod-resources and the pods' annotations.
func (p *Plugin) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	if p.state == nil {
		if err := p.Setup(ctx); err != nil {
			return err
		}
	}
	defer p.deps.Isolator.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer p.servers.stopAll()

	if p.deps.NewHealth != nil {
		gpus, _ := p.state.Snapshot()
		uuids := make([]string, 0, len(gpus))
		for _, g := range gpus {
			uuids = append(uuids, g.UUID)
		}
		hs := p.deps.NewHealth(uuids)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := hs.Run(ctx); err != nil {
				logger.Error(err, "GPU health monitor stopped")
			}
		}()
		go func() {
			defer wg.Done()
			p.forwardHealth(ctx, SourceNVML, hs.Events())
		}()
	}
	if ch := p.deps.Isolator.Events(); ch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.forwardHealth(ctx, SourceIsolator, ch)
		}()
	}
	if err := p.servers.start(ctx); err != nil {
		logger.Error(err, "Registration failed; the watcher retries")
	}
	watchTicker := p.deps.Clock.NewTicker(p.cfg.WatchInterval)
	defer watchTicker.Stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.servers.watch(ctx, watchTicker.C())
	}()

	// Rebuild and publish right away, then on every tick and health change.
	reconcileTicker := p.deps.Clock.NewTicker(p.cfg.ReconcileInterval)
	defer reconcileTicker.Stop()
	for {
		if err := p.PublishInventory(ctx); err != nil {
			logger.Error(err, "Inventory not published; retrying")
		}
		start := time.Now()
		err := p.broker.Reconcile(ctx, p.deps.Patcher, p.deps.Clock.Now())
		p.deps.Metrics.Reconcile(time.Since(start), err)
		if err != nil {
			logger.Error(err, "Allocation reconcile failed; retrying")
		}
		_, changed := p.state.Snapshot()
		select {
		case <-ctx.Done():
			return nil
		case <-reconcileTicker.C():
		case <-changed:
		}
	}
}

// inventoryProblems is what the isolator could not set up, within the
// inventory's bounds (the rest is in the log and the node's events).
func inventoryProblems(iso device.Isolator) []string {
	pr, ok := iso.(device.ProblemReporter)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range pr.Problems() {
		if len(out) == api.MaxInventoryProblems {
			break
		}
		if len(p) > api.MaxProblemLen {
			p = p[:api.MaxProblemLen-3] + "..."
		}
		out = append(out, p)
	}
	return out
}
