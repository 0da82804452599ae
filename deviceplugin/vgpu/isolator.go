package vgpu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/cdi"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
	"github.com/gpuslice/gpuslice/internal/tick"
)

// DefaultRescanInterval is how often the isolator rescans sysfs for
// instances that vanished.
const DefaultRescanInterval = 30 * time.Second

// IsolatorConfig configures the vgpu isolation mode.
type IsolatorConfig struct {
	FS sysfs.FS
	// Config is the admin's sizing; only the GPUs it selects for vgpu or
	// passthrough are served.
	Config NodeConfig
	// ResourceName names KubeVirt's variables (api.ResourceGPUMem).
	ResourceName string
	// CDIDir is where the CDI spec of the instances is written (Kata's
	// cold plug); "" writes none and names no CDI device.
	CDIDir string
	// CDIKind is the spec's kind; "" means cdi.VFIOKind.
	CDIKind string
	// RescanInterval is the period of the health rescan; 0 means
	// DefaultRescanInterval.
	RescanInterval time.Duration
	Clock          clock.WithTicker
	// InUse guards rebinds to vfio-pci; nil refuses every rebind.
	InUse InUseChecker
	// HeldGPUs returns the GPUs (device.GPU UUIDs) on which live
	// containers hold devices (deviceplugin.HeldGPUs over pod-resources):
	// nothing on them is removed or rebound. nil or an error: every GPU
	// counts as held.
	HeldGPUs func(ctx context.Context) (map[string]bool, error)
	// NewUUID names new mdevs; nil means random UUIDs that sort after the
	// GPU's existing mdevs, so that the instances already there keep their
	// index.
	NewUUID func() (string, error)
}

// Isolator is the vgpu isolation mode (device.Isolator, WholeInstancer,
// ProblemReporter): Start reconciles sysfs to the sizing config and fixes
// each served GPU's instances in a stable order (mdevs by UUID, VFs by
// their virtfn number, a passthrough GPU as its one instance); instance j
// is what a container whose gpu-mem IDs lie in instance j's range gets.
// A rescan every RescanInterval marks a GPU unhealthy when one of its
// instances, or the GPU itself, vanished.
type Isolator struct {
	cfg IsolatorConfig

	mu       sync.Mutex
	gpus     map[string]*served // by UUID
	problems []string
	tracker  Tracker
	events   chan device.HealthEvent
	rescan   *tick.Loop
}

// served is one served GPU.
type served struct {
	uuid, bdf string
	inst      device.Instances
	devs      []Device
	// static is why the GPU is unhealthy for good (until a restart);
	// gone the instances that vanished, by ID.
	static  string
	gone    map[string]string
	healthy bool
	reason  string
}

var (
	_ device.Isolator        = (*Isolator)(nil)
	_ device.WholeInstancer  = (*Isolator)(nil)
	_ device.ProblemReporter = (*Isolator)(nil)
)

// NewIsolator checks cfg and returns the mode, not yet started.
func NewIsolator(cfg IsolatorConfig) (*Isolator, error) {
	switch {
	case cfg.FS == nil:
		return nil, errors.New("vgpu isolation: no sysfs")
	case cfg.Clock == nil:
		return nil, errors.New("vgpu isolation: no clock")
	case strings.TrimSpace(cfg.ResourceName) == "":
		return nil, errors.New("vgpu isolation: no resource name")
	case cfg.RescanInterval < 0:
		return nil, fmt.Errorf("vgpu isolation: negative rescan interval %v", cfg.RescanInterval)
	}
	cfg.RescanInterval = cmp.Or(cfg.RescanInterval, DefaultRescanInterval)
	cfg.CDIKind = cmp.Or(cfg.CDIKind, cdi.VFIOKind)
	if err := cdi.ValidateKind(cfg.CDIKind); err != nil {
		return nil, fmt.Errorf("vgpu isolation: %w", err)
	}
	if err := cfg.Config.Normalize(); err != nil {
		return nil, fmt.Errorf("vgpu isolation: %w", err)
	}
	return &Isolator{cfg: cfg, gpus: map[string]*served{}, events: make(chan device.HealthEvent, 64)}, nil
}

// Mode implements device.Isolator: the node's mode; each GPU's own mode
// (vgpu or passthrough) is in Instances.
func (*Isolator) Mode() api.IsolationMode { return api.IsolationVGPU }

// Start implements device.Isolator: it reconciles sysfs to the config
// (never removing or rebinding anything on a GPU where live containers hold
// devices), fixes each served GPU's instances, writes the CDI spec and
// starts the rescan. Only a node whose PCI devices cannot be listed, or a
// CDI spec that cannot be written, fails it; everything else is a Problem.
func (i *Isolator) Start(ctx context.Context, gpus []device.GPU) error {
	logger := klog.FromContext(ctx)
	byBDF := map[string]device.GPU{}
	models := map[string]string{}
	for _, g := range gpus {
		byBDF[g.PCIBusID] = g
		if !IsPCIID(g.UUID) {
			models[g.PCIBusID] = g.Model
		}
	}
	heldGPUs, herr := map[string]bool(nil), errors.New("no pod-resources")
	if i.cfg.HeldGPUs != nil {
		heldGPUs, herr = i.cfg.HeldGPUs(ctx)
	}
	pre, err := Discover(ctx, i.cfg.FS)
	if err != nil {
		return fmt.Errorf("vgpu isolation: %w", err)
	}
	held := map[string]bool{}
	heldBDF := map[string]bool{}
	for _, g := range pre.GPUs {
		dg, known := byBDF[g.BDF]
		if herr != nil || !known || heldGPUs[dg.UUID] {
			heldBDF[g.BDF] = true
			held[g.BDF] = true
			for _, d := range g.Devices() {
				held[d.ID] = true
			}
		}
	}
	if herr != nil {
		logger.Info("Cannot tell which GPUs pods hold; removing and rebinding nothing", "err", herr)
	}
	r := &Reconciler{FS: i.cfg.FS, InUse: i.inUse(), NewUUID: i.cfg.NewUUID}
	if r.NewUUID == nil {
		r.NewUUID = afterUUIDs(pre)
	}
	rep, err := r.Reconcile(ctx, Input{Config: i.cfg.Config, Held: held, Models: models})
	if err != nil {
		return fmt.Errorf("vgpu isolation: %w", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.problems = nil
	for _, p := range rep.Problems {
		i.problems = append(i.problems, "vGPU reconcile: "+p.String())
	}
	byParent := map[string][]Device{}
	for _, d := range rep.Devices {
		byParent[d.Parent] = append(byParent[d.Parent], d)
	}
	kept := map[string]int{}
	for _, d := range rep.Kept {
		kept[d.Parent]++
	}
	var cdiDevs []cdi.Device
	for _, g := range rep.Node.GPUs {
		want, ok := rep.Wanted[g.BDF]
		dg, known := byBDF[g.BDF]
		if !ok || !known || want.Mode == ModeNone {
			continue
		}
		s := &served{uuid: dg.UUID, bdf: g.BDF, devs: orderDevices(&g, byParent[g.BDF]), gone: map[string]string{}}
		if err := i.describe(s, dg, want); err != nil {
			i.problems = append(i.problems, fmt.Sprintf("GPU %s (%s): not served: %v", g.BDF, dg.UUID, err))
			continue
		}
		if heldBDF[g.BDF] {
			if before := orderDevices(gpuOf(pre, g.BDF), byParent[g.BDF]); !isPrefix(instanceIDs(before), instanceIDs(s.devs)) {
				s.static = "the order of its instances changed while pods hold some of them; it takes no new pods until they end and the plugin restarts"
			}
		}
		if n := kept[g.BDF]; n > 0 {
			s.static = fmt.Sprintf("pods hold %d instance(s) that the config no longer wants; it takes no new pods until they end and the plugin restarts", n)
		}
		if s.static != "" {
			i.problems = append(i.problems, fmt.Sprintf("GPU %s (%s): %s", g.BDF, dg.UUID, s.static))
		}
		s.update()
		i.gpus[s.uuid] = s
		for _, d := range s.devs {
			nodes, err := VFIODeviceNodes(d.IOMMUGroup)
			if err != nil {
				return fmt.Errorf("vgpu isolation: instance %s: %w", d.ID, err)
			}
			cdiDevs = append(cdiDevs, cdi.Device{Name: d.ID, Nodes: nodes})
		}
		logger.Info("Serving GPU instances", "gpu", s.uuid, "pciBusID", s.bdf, "mode", s.inst.Mode, "type", s.inst.VGPUType,
			"instanceMiB", s.inst.InstanceMiB, "instances", instanceIDs(s.devs))
	}
	for _, p := range i.problems {
		logger.Info("vGPU problem", "problem", p)
	}
	i.tracker = Tracker{}
	i.tracker.Observe(&Report{Devices: rep.Devices})
	if i.cfg.CDIDir != "" {
		if err := cdi.WriteSpec(i.cfg.CDIDir, i.cfg.CDIKind, cdiDevs); err != nil {
			return fmt.Errorf("vgpu isolation: %w", err)
		}
	}
	i.startRescan(ctx)
	return nil
}

// describe fills s's instance description, or says why g is not served.
func (i *Isolator) describe(s *served, dg device.GPU, want GPUConfig) error {
	if len(s.devs) == 0 {
		return errors.New("no instances (see the reconcile's problems)")
	}
	switch want.Mode {
	case ModePassthrough:
		mem := cmp.Or(dg.MemoryMiB, want.MemoryMiB)
		if mem <= 0 {
			return errors.New("its memory is unknown: NVML does not see it; set memoryMiB in its vgpu config entry")
		}
		s.inst = device.Instances{Mode: api.IsolationPassthrough, InstanceMiB: mem}
		if dg.MemoryMiB <= 0 {
			s.inst.MemoryMiB = mem
		}
	default:
		d := s.devs[0]
		if d.FramebufferMiB <= 0 {
			return fmt.Errorf("the framebuffer of vGPU type %q is unknown", d.TypeName)
		}
		s.inst = device.Instances{Mode: api.IsolationVGPU, VGPUType: d.TypeName, InstanceMiB: d.FramebufferMiB}
	}
	return nil
}

func (i *Isolator) inUse() InUseChecker {
	if i.cfg.InUse != nil {
		return i.cfg.InUse
	}
	return refuseInUse{}
}

// refuseInUse is the InUseChecker of a mode without one: it cannot tell.
type refuseInUse struct{}

func (refuseInUse) InUse(context.Context, string) (bool, string, error) {
	return false, "", errors.New("no in-use checker configured")
}

// orderDevices returns devs (instances of g) in the stable order: mdevs by
// UUID, VFs by virtfn number, a passthrough GPU alone.
func orderDevices(g *GPU, devs []Device) []Device {
	if g == nil {
		return nil
	}
	vfIndex := map[string]int{}
	for _, vf := range g.VFs {
		vfIndex[vf.BDF] = vf.Index
	}
	present := map[string]bool{}
	for _, d := range g.Devices() {
		present[d.ID] = true
	}
	out := slices.DeleteFunc(slices.Clone(devs), func(d Device) bool { return !present[d.ID] })
	slices.SortFunc(out, func(a, b Device) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(vfIndex[a.ID], vfIndex[b.ID]), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func gpuOf(n *Node, bdf string) *GPU {
	g, _ := n.GPU(bdf)
	return g
}

func instanceIDs(devs []Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.ID
	}
	return out
}

func isPrefix(pre, all []string) bool {
	return len(pre) <= len(all) && slices.Equal(pre, all[:len(pre)])
}

// afterUUIDs returns a NewUUID whose UUIDs sort after every mdev of n, so
// that new mdevs take the indexes after the existing ones.
func afterUUIDs(n *Node) func() (string, error) {
	maxUUID := ""
	for _, g := range n.GPUs {
		for _, m := range g.Mdevs {
			maxUUID = max(maxUUID, m.UUID)
		}
	}
	return func() (string, error) {
		u, err := NewUUID()
		if err != nil || u > maxUUID {
			if err == nil {
				maxUUID = u
			}
			return u, err
		}
		// Take the first group past the largest one; the rest stays random.
		var first uint32
		if _, err := fmt.Sscanf(maxUUID[:8], "%08x", &first); err != nil || first == ^uint32(0) {
			return u, nil
		}
		u = fmt.Sprintf("%08x", first+1) + u[8:]
		maxUUID = u
		return u, nil
	}
}

// snapshot returns a copy of the served GPU, taken under the lock; ok is
// false when the GPU is not served. Its gone map is shared: not to be read.
func (i *Isolator) snapshot(uuid string) (s served, ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if p, ok := i.gpus[uuid]; ok {
		return *p, true
	}
	return served{}, false
}

// Slots implements device.Isolator: the GPU's instances.
func (i *Isolator) Slots(g device.GPU) int64 {
	s, _ := i.snapshot(g.UUID)
	return int64(len(s.devs))
}

// Instances implements device.WholeInstancer.
func (i *Isolator) Instances(g device.GPU) (device.Instances, bool) {
	s, ok := i.snapshot(g.UUID)
	return s.inst, ok
}

// Problems implements device.ProblemReporter.
func (i *Isolator) Problems() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.problems)
}

// Devices returns the served GPU's instances in their index order.
func (i *Isolator) Devices(uuid string) []Device {
	s, _ := i.snapshot(uuid)
	return slices.Clone(s.devs)
}

// Healthy implements device.Isolator: a GPU it does not serve is healthy.
func (i *Isolator) Healthy(uuid string) (bool, string) {
	if s, ok := i.snapshot(uuid); ok {
		return s.healthy, s.reason
	}
	return true, ""
}

// update recomputes s's health; it reports whether it changed.
func (s *served) update() bool {
	var rs []string
	if s.static != "" {
		rs = append(rs, s.static)
	}
	for _, id := range slices.Sorted(maps.Keys(s.gone)) {
		rs = append(rs, s.gone[id])
	}
	h, r := len(rs) == 0, strings.Join(rs, "; ")
	if h == s.healthy && r == s.reason {
		return false
	}
	s.healthy, s.reason = h, r
	return true
}

// Events implements device.Isolator; Stop closes the channel.
func (i *Isolator) Events() <-chan device.HealthEvent { return i.events }

// ContainerEdits implements device.Isolator: each device's instance
// (ContainerDevice.Instance) becomes its VFIO device nodes, KubeVirt's
// variable and, with a CDI directory, its CDI device.
func (i *Isolator) ContainerEdits(devs []device.ContainerDevice) (*device.ContainerEdits, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var insts []Device
	for _, d := range devs {
		s, ok := i.gpus[d.UUID]
		if !ok {
			return nil, fmt.Errorf("GPU %s has no vGPU or passthrough instances", d.UUID)
		}
		if d.Instance < 0 || d.Instance >= len(s.devs) {
			return nil, fmt.Errorf("GPU %s has %d instances, not instance %d", d.UUID, len(s.devs), d.Instance)
		}
		insts = append(insts, s.devs[d.Instance])
	}
	e, err := AllocateEdits(i.cfg.ResourceName, insts)
	if err != nil {
		return nil, err
	}
	if i.cfg.CDIDir != "" {
		for _, d := range insts {
			n, err := cdi.DeviceName(i.cfg.CDIKind, d.ID)
			if err != nil {
				return nil, err
			}
			e.CDIDevices = append(e.CDIDevices, n)
		}
	}
	return e, nil
}

func (i *Isolator) startRescan(ctx context.Context) {
	if i.rescan != nil {
		return
	}
	i.rescan = tick.Go(context.WithoutCancel(ctx), i.cfg.Clock.NewTicker(i.cfg.RescanInterval), func(ctx context.Context) {
		if err := i.Rescan(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "vGPU rescan failed")
		}
	})
}

// Rescan discovers sysfs again and marks the GPUs whose instances (or which
// themselves) vanished unhealthy, and healthy again when they are back; each
// change is one HealthEvent. The rescan loop calls it every
// RescanInterval.
func (i *Isolator) Rescan(ctx context.Context) error {
	n, err := Discover(ctx, i.cfg.FS)
	if err != nil {
		return fmt.Errorf("vGPU rescan: %w", err)
	}
	i.mu.Lock()
	var out []device.HealthEvent
	byBDF := map[string]*served{}
	for _, s := range i.gpus {
		byBDF[s.bdf] = s
	}
	for _, e := range i.tracker.Rescan(n) {
		s := byBDF[e.Device.Parent]
		if s == nil {
			continue
		}
		if e.Healthy {
			delete(s.gone, e.Device.ID)
		} else {
			s.gone[e.Device.ID] = e.Reason
		}
		klog.FromContext(ctx).Info("vGPU instance health changed", "gpu", s.uuid, "instance", e.Device.ID, "healthy", e.Healthy, "reason", e.Reason)
	}
	for _, u := range slices.Sorted(maps.Keys(i.gpus)) {
		if s := i.gpus[u]; s.update() {
			out = append(out, device.HealthEvent{UUID: s.uuid, Healthy: s.healthy, Reason: s.reason})
		}
	}
	i.mu.Unlock()
	for _, e := range out {
		select {
		case i.events <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Stop implements device.Isolator: it ends the rescan and closes Events.
func (i *Isolator) Stop() {
	i.mu.Lock()
	rescan := i.rescan
	i.rescan = nil
	i.mu.Unlock()
	if rescan != nil {
		rescan.Stop()
		close(i.events)
	}
}
