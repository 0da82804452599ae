package deviceplugin

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// GPUState is one served GPU: what discovery found, its capacity in units
// and its current health.
type GPUState struct {
	device.GPU
	// Slices of gpu-mem and sharing Slots the GPU offers.
	Slices int64
	Slots  int64
	// Isolation is the GPU's own mode where the isolator says (a
	// whole-instance GPU: vgpu or passthrough), "" for the node's mode.
	// VGPUType and InstanceMiB describe its instances (api.GPU).
	Isolation   api.IsolationMode
	VGPUType    string
	InstanceMiB int64
	// Healthy is false while any health source reports a problem; Reason
	// joins their reasons.
	Healthy bool
	Reason  string
}

// Health sources.
const (
	SourceNVML     = "nvml"
	SourceIsolator = "isolator"
)

// State holds the served GPUs and notifies watchers of changes. It is safe
// for concurrent use.
type State struct {
	mu       sync.Mutex
	gpus     []GPUState
	problems map[string]map[string]string // uuid -> source -> reason
	changed  chan struct{}
}

// NewState returns a state of healthy GPUs (ordered by Index).
func NewState(gpus []GPUState) *State {
	s := &State{gpus: slices.Clone(gpus), problems: map[string]map[string]string{}, changed: make(chan struct{})}
	slices.SortFunc(s.gpus, func(a, b GPUState) int { return a.Index - b.Index })
	for i := range s.gpus {
		s.gpus[i].Healthy, s.gpus[i].Reason = true, ""
	}
	return s
}

// Snapshot returns a copy of the GPUs and a channel closed at the next change.
func (s *State) Snapshot() ([]GPUState, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.gpus), s.changed
}

// GPU returns the GPU with this UUID.
func (s *State) GPU(uuid string) (GPUState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.gpus {
		if g.UUID == uuid {
			return g, true
		}
	}
	return GPUState{}, false
}

// SetHealth records what one source says about a GPU and reports whether
// the GPU's health or reason changed.
func (s *State) SetHealth(uuid, source string, healthy bool, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.gpus, func(g GPUState) bool { return g.UUID == uuid })
	if i < 0 {
		return false
	}
	p := s.problems[uuid]
	if p == nil {
		p = map[string]string{}
		s.problems[uuid] = p
	}
	if healthy {
		delete(p, source)
	} else {
		if reason == "" {
			reason = "unhealthy"
		}
		p[source] = reason
	}
	var rs []string
	for _, src := range slices.Sorted(maps.Keys(p)) {
		rs = append(rs, src+": "+p[src])
	}
	g := &s.gpus[i]
	nh, nr := len(rs) == 0, strings.Join(rs, "; ")
	if g.Healthy == nh && g.Reason == nr {
		return false
	}
	g.Healthy, g.Reason = nh, nr
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

// Inventory returns the node inventory annotation's content: caps is what
// the node was detected to support (nil when unknown), every GPU is of the
// node's isolation mode unless it has its own (GPUState.Isolation), and
// enforces what its mode does (api.DefaultEnforcement).
func (s *State) Inventory(sliceMiB int64, mode api.IsolationMode, caps *api.Capabilities) *api.Inventory {
	gpus, _ := s.Snapshot()
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: sliceMiB, Capabilities: caps, GPUs: make([]api.GPU, 0, len(gpus))}
	for _, g := range gpus {
		m := cmp.Or(g.Isolation, mode)
		inv.GPUs = append(inv.GPUs, api.GPU{
			Index: g.Index, UUID: g.UUID, Model: g.Model, MemoryMiB: g.MemoryMiB,
			Slices: g.Slices, Slots: g.Slots, CoreUnits: api.CoreUnitsPerGPU,
			NUMANode: g.NUMANode, PCIBusID: g.PCIBusID, Healthy: g.Healthy, Reason: g.Reason,
			Isolation: m, VGPUType: g.VGPUType, InstanceMiB: g.InstanceMiB,
			Enforcement: api.DefaultEnforcement(m), MIGMode: migMode(g.GPU),
			Links: slices.Clone(g.Links),
		})
	}
	return inv
}

// migMode is the inventory's MIG mode of a GPU: "" when it cannot do MIG.
func migMode(g device.GPU) string {
	switch {
	case !g.MIGCapable:
		return ""
	case g.MIGEnabled:
		return api.MIGEnabled
	}
	return api.MIGDisabled
}
