package deviceplugin

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// PodLister lists the pods bound to this node (an informer cache in
// production, a slice in tests).
type PodLister interface {
	ListPods() ([]*corev1.Pod, error)
}

// PodResources is kubelet's pod-resources API.
type PodResources interface {
	List(ctx context.Context) ([]*podresourcesv1.PodResources, error)
}

// ContainerKey names one container of one pod.
type ContainerKey struct {
	Namespace, Pod string
	UID            types.UID
	Container      string
	Init           bool
}

func (k ContainerKey) String() string {
	kind := "container"
	if k.Init {
		kind = "init container"
	}
	return fmt.Sprintf("%s %q of pod %s/%s", kind, k.Container, k.Namespace, k.Pod)
}

// candidate is a container that requests gpuslice resources, with what
// kubelet has already given it.
type candidate struct {
	key       ContainerKey
	pod       *corev1.Pod
	placement *api.Placement
	cp        *api.ContainerPlacement
	// why there is no usable placement (cp == nil)
	noPlacement string
	order       int
	req         [numKinds]int64
	gpus        int
	have        [numKinds][]string
	done        bool
}

func (c *candidate) inProgress() bool {
	for _, k := range Kinds() {
		if len(c.have[k]) > 0 {
			return true
		}
	}
	return false
}

// haveGPUs returns the GPUs of the devices kubelet already gave the
// container (any kind), sorted, or nil.
func (c *candidate) haveGPUs() []string {
	set := map[string]bool{}
	for _, k := range Kinds() {
		for _, id := range c.have[k] {
			if u, _, _, err := ParseDeviceID(id); err == nil {
				set[u] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func (c *candidate) share(d api.DeviceShare, k Kind) int64 {
	switch k {
	case KindMem:
		return d.Slices
	case KindCore:
		return d.Core
	}
	return d.Slots
}

// requestOf reads a container's gpuslice request (limits; requests equal
// limits for extended resources).
func requestOf(c *corev1.Container) ([numKinds]int64, bool) {
	var r [numKinds]int64
	any := false
	for _, k := range Kinds() {
		q, ok := c.Resources.Limits[corev1.ResourceName(k.Resource())]
		if !ok {
			q, ok = c.Resources.Requests[corev1.ResourceName(k.Resource())]
		}
		if ok && q.Value() > 0 {
			r[k] = q.Value()
			any = true
		}
	}
	return r, any
}

// ledgerEntry is what this process handed out in one Allocate call.
type ledgerEntry struct {
	key  ContainerKey
	kind Kind
	ids  []string // sorted
	resp *pluginapi.ContainerAllocateResponse
}

// Broker resolves kubelet's identity-less calls to containers. All methods
// are serialised by one mutex (kubelet calls them one at a time anyway).
type Broker struct {
	node     string
	sliceMiB int64
	strategy Strategy
	cdiKind  string
	state    *State
	iso      device.Isolator
	pods     PodLister
	pr       PodResources

	mu     sync.Mutex
	ledger []*ledgerEntry
}

// NewBroker returns a broker.
func NewBroker(cfg *Config, state *State, iso device.Isolator, pods PodLister, pr PodResources) *Broker {
	return &Broker{node: cfg.NodeName, sliceMiB: cfg.SliceMiB, strategy: cfg.Strategy, cdiKind: cfg.CDIKind,
		state: state, iso: iso, pods: pods, pr: pr}
}

type snapshot struct {
	cands []*candidate
	// prOwner maps a device ID to the container pod-resources says has it.
	prOwner map[string]*candidate
	prErr   error
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func (b *Broker) snapshot(ctx context.Context) (*snapshot, error) {
	pods, err := b.pods.ListPods()
	if err != nil {
		return nil, fmt.Errorf("list pods of node %s: %w", b.node, err)
	}
	s := &snapshot{prOwner: map[string]*candidate{}}
	byName := map[string]*candidate{}
	for _, p := range pods {
		if p.Spec.NodeName != b.node || terminal(p) {
			continue
		}
		var pl *api.Placement
		why := ""
		if v, ok := p.Annotations[api.AnnotationPlacement]; !ok {
			why = "it has no " + api.AnnotationPlacement + " annotation (did it bypass the gpuslice scheduler extender?)"
		} else if pl, err = api.ParsePlacement(v); err != nil {
			why = "its placement is invalid: " + err.Error()
			pl = nil
		} else if pl.Node != b.node {
			why = fmt.Sprintf("its placement is for node %q, not %q (stale placement)", pl.Node, b.node)
			pl = nil
		}
		order := 0
		add := func(c *corev1.Container, init bool) {
			defer func() { order++ }()
			req, ok := requestOf(c)
			if !ok {
				return
			}
			cand := &candidate{
				key: ContainerKey{Namespace: p.Namespace, Pod: p.Name, UID: p.UID, Container: c.Name, Init: init},
				pod: p, placement: pl, order: order, req: req, gpus: 1, noPlacement: why,
			}
			if req[KindSlot] > 0 {
				cand.gpus = int(req[KindSlot])
			}
			if pl != nil {
				if cand.cp = pl.Container(c.Name, init); cand.cp == nil {
					cand.noPlacement = "its placement has no entry for " + cand.key.String()
				}
			}
			s.cands = append(s.cands, cand)
			byName[p.Namespace+"/"+p.Name+"/"+c.Name] = cand
		}
		for i := range p.Spec.InitContainers {
			add(&p.Spec.InitContainers[i], true)
		}
		for i := range p.Spec.Containers {
			add(&p.Spec.Containers[i], false)
		}
	}
	if b.pr != nil {
		prs, err := b.pr.List(ctx)
		if err != nil {
			s.prErr = err
			klog.FromContext(ctx).Info("Pod resources unavailable; using this process's own record", "err", err)
		}
		for _, pr := range prs {
			for _, cr := range pr.GetContainers() {
				c := byName[pr.GetNamespace()+"/"+pr.GetName()+"/"+cr.GetName()]
				for _, d := range cr.GetDevices() {
					k, ok := KindOf(d.GetResourceName())
					if !ok || c == nil {
						continue
					}
					c.have[k] = append(c.have[k], d.GetDeviceIds()...)
					for _, id := range d.GetDeviceIds() {
						s.prOwner[id] = c
					}
				}
			}
		}
	}
	for _, e := range b.ledger {
		if s.prOwner[e.ids[0]] != nil {
			continue // pod-resources knows better
		}
		for _, c := range s.cands {
			if c.key == e.key && len(c.have[e.kind]) == 0 {
				c.have[e.kind] = e.ids
			}
		}
	}
	// kubelet allocates a pod's containers in order (init containers, then
	// app containers): a container before one that has devices is done.
	seen := map[types.UID]int{}
	for i := len(s.cands) - 1; i >= 0; i-- {
		c := s.cands[i]
		if last, ok := seen[c.key.UID]; ok && last > c.order && !c.inProgress() {
			c.done = true
		}
		if c.inProgress() {
			if _, ok := seen[c.key.UID]; !ok {
				seen[c.key.UID] = c.order
			}
		}
	}
	for _, c := range s.cands {
		slices.Sort(c.have[KindMem])
		slices.Sort(c.have[KindCore])
		slices.Sort(c.have[KindSlot])
	}
	return s, nil
}

// dist is a call's device IDs grouped by GPU.
type dist map[string][]string

func (d dist) gpus() []string { return slices.Sorted(maps.Keys(d)) }

func (b *Broker) distribution(k Kind, ids []string) (dist, error) {
	d := dist{}
	for _, id := range ids {
		u, kind, _, err := ParseDeviceID(id)
		if err != nil {
			return nil, err
		}
		if kind != k {
			return nil, fmt.Errorf("device %s is not a %s device", id, k.Resource())
		}
		g, ok := b.state.GPU(u)
		if !ok {
			return nil, fmt.Errorf("device %s is on GPU %s, which this node does not serve", id, u)
		}
		if !g.Healthy {
			return nil, fmt.Errorf("device %s is on unhealthy GPU %s: %s", id, u, g.Reason)
		}
		d[u] = append(d[u], id)
	}
	return d, nil
}

// fits reports whether the call (kind k, devices d) can be container c's.
func (c *candidate) fits(k Kind, d dist) bool {
	if c.cp == nil || c.done || c.req[k] == 0 || len(c.have[k]) > 0 || len(d) != c.gpus {
		return false
	}
	total := int64(0)
	for _, ids := range d {
		if int64(len(ids)) != c.req[k]/int64(c.gpus) {
			return false
		}
		total += int64(len(ids))
	}
	if total != c.req[k] {
		return false
	}
	if hg := c.haveGPUs(); hg != nil && !slices.Equal(hg, d.gpus()) {
		return false
	}
	return true
}

// exact reports whether d is on the placement's GPUs with its shares.
func (c *candidate) exact(k Kind, d dist) bool {
	if c.cp == nil || len(c.cp.Devices) != len(d) {
		return false
	}
	for _, dev := range c.cp.Devices {
		if int64(len(d[dev.UUID])) != c.share(dev, k) {
			return false
		}
	}
	return true
}

func rank(a, b *candidate, exactA, exactB bool) int {
	if a.inProgress() != b.inProgress() {
		if a.inProgress() {
			return -1
		}
		return 1
	}
	if exactA != exactB {
		if exactA {
			return -1
		}
		return 1
	}
	return cmp.Or(
		a.placement.AssignedAt.Compare(b.placement.AssignedAt),
		a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time),
		cmp.Compare(a.key.Namespace, b.key.Namespace),
		cmp.Compare(a.key.Pod, b.key.Pod),
		cmp.Compare(a.order, b.order),
	)
}

// noCandidate explains why nothing matched.
func (b *Broker) noCandidate(s *snapshot, k Kind, what string) error {
	var hints []string
	for _, c := range s.cands {
		if c.req[k] == 0 || len(c.have[k]) > 0 || c.done {
			continue
		}
		if c.cp == nil {
			hints = append(hints, fmt.Sprintf("%s requests %s=%d but %s", c.key, k.Resource(), c.req[k], c.noPlacement))
		}
		if len(hints) == 3 {
			break
		}
	}
	msg := fmt.Sprintf("gpuslice: no container on node %s with a gpuslice placement is waiting for %s %s", b.node, k.Resource(), what)
	if len(hints) > 0 {
		msg += "; " + strings.Join(hints, "; ")
	}
	if s.prErr != nil {
		msg += fmt.Sprintf("; kubelet pod-resources unavailable: %v", s.prErr)
	}
	return fmt.Errorf("%s", msg)
}

// resolve picks the container a call of kind k with devices d is for.
func (b *Broker) resolve(s *snapshot, k Kind, d dist) (*candidate, error) {
	var best *candidate
	bestExact := false
	var progress []*candidate
	for _, c := range s.cands {
		if c.inProgress() && c.req[k] > 0 && len(c.have[k]) == 0 && !c.done {
			progress = append(progress, c)
		}
		if !c.fits(k, d) {
			continue
		}
		ex := c.exact(k, d)
		if best == nil || rank(c, best, ex, bestExact) < 0 {
			best, bestExact = c, ex
		}
	}
	if best == nil {
		var gpus []string
		for _, u := range d.gpus() {
			gpus = append(gpus, fmt.Sprintf("%s x%d", u, len(d[u])))
		}
		err := b.noCandidate(s, k, fmt.Sprintf("on GPUs [%s]", strings.Join(gpus, ", ")))
		if len(progress) > 0 {
			err = fmt.Errorf("%w; %s is being allocated and kubelet offered devices that do not match its request (%s=%d over %d GPUs, already on %v)",
				err, progress[0].key, k.Resource(), progress[0].req[k], progress[0].gpus, progress[0].haveGPUs())
		}
		return nil, err
	}
	if len(progress) > 0 && !best.inProgress() {
		return nil, fmt.Errorf("gpuslice: %s is being allocated but kubelet offered %s devices on %v that do not match its request (%s=%d over %d GPUs, already on %v)",
			progress[0].key, k.Resource(), d.gpus(), k.Resource(), progress[0].req[k], progress[0].gpus, progress[0].haveGPUs())
	}
	return best, nil
}

// respond builds the Allocate response of container c holding mem devices d.
func (b *Broker) respond(c *candidate, d dist) (*pluginapi.ContainerAllocateResponse, []device.ContainerDevice, error) {
	pos := placementPositions(c.cp)
	uuids := d.gpus()
	idx := map[string]int{}
	for _, u := range uuids {
		g, _ := b.state.GPU(u)
		idx[u] = g.Index
	}
	slices.SortStableFunc(uuids, func(x, y string) int {
		return placementOrder(pos, x, idx[x], y, idx[y])
	})
	devs := make([]device.ContainerDevice, len(uuids))
	for i, u := range uuids {
		devs[i] = device.ContainerDevice{UUID: u, HostIndex: idx[u], ContainerIndex: i,
			MemLimitMiB: int64(len(d[u])) * b.sliceMiB, ThreadPercentage: int(c.req[KindCore] / int64(c.gpus))}
	}
	edits, err := b.iso.ContainerEdits(devs)
	if err != nil {
		return nil, nil, fmt.Errorf("gpuslice: %s isolation for %s: %w", b.iso.Mode(), c.key, err)
	}
	return containerResponse(b.strategy, b.cdiKind, uuids, edits), devs, nil
}

// Allocate handles one container request of kind k.
func (b *Broker) Allocate(ctx context.Context, k Kind, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	logger := klog.FromContext(ctx)
	if len(ids) == 0 {
		return nil, fmt.Errorf("gpuslice: empty %s allocation request", k.Resource())
	}
	d, err := b.distribution(k, ids)
	if err != nil {
		return nil, fmt.Errorf("gpuslice: %s allocation: %w", k.Resource(), err)
	}
	s, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	b.fixLedger(ctx, s)
	c, err := b.resolve(s, k, d)
	if err != nil {
		logger.Info("Allocate refused", "resource", k.Resource(), "devices", len(ids), "err", err)
		return nil, err
	}
	resp := &pluginapi.ContainerAllocateResponse{}
	if k == KindMem {
		if resp, _, err = b.respond(c, d); err != nil {
			return nil, err
		}
	}
	sorted := slices.Sorted(slices.Values(ids))
	b.ledger = append(b.ledger, &ledgerEntry{key: c.key, kind: k, ids: sorted, resp: resp})
	logger.Info("Allocated", "resource", k.Resource(), "pod", klog.KObj(c.pod), "container", c.key.Container,
		"init", c.key.Init, "gpus", d.gpus(), "units", len(ids), "exactPlacement", c.exact(k, d))
	return resp, nil
}

// fixLedger moves ledger entries to the container pod-resources says got
// the devices (interchangeable pods that kubelet admitted in another order).
func (b *Broker) fixLedger(ctx context.Context, s *snapshot) {
	for _, e := range b.ledger {
		owner := s.prOwner[e.ids[0]]
		if owner == nil || owner.key == e.key {
			continue
		}
		if e.key.Init && owner.key.UID == e.key.UID {
			continue // kubelet reused the init container's devices
		}
		klog.FromContext(ctx).Info("Interchangeable containers swapped by kubelet", "resource", e.kind.Resource(),
			"recorded", e.key.String(), "actual", owner.key.String())
		e.key = owner.key
	}
}

// PreStart verifies, before a container starts, that the gpu-mem devices
// ids went to a container whose environment is the one Allocate returned.
func (b *Broker) PreStart(ctx context.Context, ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	logger := klog.FromContext(ctx)
	s, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	sorted := slices.Sorted(slices.Values(ids))
	owner := s.prOwner[sorted[0]]
	var entry *ledgerEntry
	for _, e := range b.ledger {
		if e.kind == KindMem && slices.Equal(e.ids, sorted) {
			entry = e
		}
	}
	if owner == nil || entry == nil {
		// Allocated before this process started, or pod-resources is
		// unavailable: nothing this process handed out to compare with.
		logger.V(2).Info("PreStart without a record to verify", "devices", len(ids))
		return nil
	}
	if owner.cp == nil {
		return fmt.Errorf("gpuslice: %s holds gpu-mem devices but %s", owner.key, owner.noPlacement)
	}
	gpus := owner.haveGPUs()
	for _, k := range Kinds() {
		if owner.req[k] > 0 && int64(len(owner.have[k])) != owner.req[k] {
			return fmt.Errorf("gpuslice: %s has %d %s devices, want %d", owner.key, len(owner.have[k]), k.Resource(), owner.req[k])
		}
	}
	if len(gpus) != owner.gpus {
		return fmt.Errorf("gpuslice: %s got devices on GPUs %v, want %d GPU(s) with every resource on the same GPUs", owner.key, gpus, owner.gpus)
	}
	d, err := b.distribution(KindMem, ids)
	if err != nil {
		return fmt.Errorf("gpuslice: %w", err)
	}
	want, _, err := b.respond(owner, d)
	if err != nil {
		return err
	}
	if !proto.Equal(want, entry.resp) {
		return fmt.Errorf("gpuslice: %s was given the environment prepared for %s (kubelet admitted them in another order and their shares differ); refusing to start it with the wrong limits: delete the pod to retry", owner.key, entry.key)
	}
	entry.key = owner.key
	return nil
}

// Preferred answers GetPreferredAllocation for one container request.
func (b *Broker) Preferred(ctx context.Context, k Kind, available, must []string, size int) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	avail := dist{}
	for _, id := range available {
		if u, kind, _, err := ParseDeviceID(id); err == nil && kind == k {
			avail[u] = append(avail[u], id)
		}
	}
	for _, ids := range avail {
		slices.SortFunc(ids, compareIDs)
	}
	room := func(c *candidate, gpus []string) bool {
		per := int(c.req[k]) / c.gpus
		for _, u := range gpus {
			if len(avail[u]) < per {
				return false
			}
		}
		return true
	}
	var best *candidate
	for _, c := range s.cands {
		if c.cp == nil || c.done || c.req[k] != int64(size) || len(c.have[k]) > 0 {
			continue
		}
		if best == nil {
			best = c
			continue
		}
		r := rank(c, best, room(c, c.targetGPUs()), room(best, best.targetGPUs()))
		if r < 0 {
			best = c
		}
	}
	if best == nil {
		return nil, b.noCandidate(s, k, fmt.Sprintf("%d", size))
	}
	per := size / best.gpus
	chosen := map[string][]string{}
	var order []string
	for _, id := range must {
		u, _, _, err := ParseDeviceID(id)
		if err != nil {
			continue
		}
		if _, ok := chosen[u]; !ok {
			order = append(order, u)
		}
		chosen[u] = append(chosen[u], id)
	}
	targets := best.targetGPUs()
	if !room(best, targets) && !best.inProgress() {
		// The placement's GPUs lack room (an interchangeable pod took
		// them): fall back to the GPUs with room, placement's first.
		var alt []string
		for _, g := range b.gpusByIndex() {
			if len(avail[g]) >= per && !slices.Contains(alt, g) {
				alt = append(alt, g)
			}
		}
		targets = append(slices.Clone(targets), alt...)
	}
	for _, u := range targets {
		if len(order) >= best.gpus {
			break
		}
		if _, ok := chosen[u]; !ok && len(avail[u]) >= per {
			order = append(order, u)
			chosen[u] = nil
		}
	}
	var out []string
	for _, u := range order {
		have := chosen[u]
		for _, id := range avail[u] {
			if len(have) >= per {
				break
			}
			if !slices.Contains(have, id) {
				have = append(have, id)
			}
		}
		out = append(out, have...)
	}
	klog.FromContext(ctx).V(2).Info("Preferred allocation", "resource", k.Resource(), "pod", klog.KObj(best.pod),
		"container", best.key.Container, "gpus", order, "size", size)
	return out, nil
}

// targetGPUs is where a candidate's next devices should go: the GPUs it
// already has, or its placement's.
func (c *candidate) targetGPUs() []string {
	if hg := c.haveGPUs(); hg != nil {
		return hg
	}
	out := make([]string, 0, len(c.cp.Devices))
	for _, d := range c.cp.Devices {
		out = append(out, d.UUID)
	}
	return out
}

func (b *Broker) gpusByIndex() []string {
	gpus, _ := b.state.Snapshot()
	out := make([]string, 0, len(gpus))
	for _, g := range gpus {
		if g.Healthy {
			out = append(out, g.UUID)
		}
	}
	return out
}

func compareIDs(a, b string) int {
	ua, ka, na, _ := ParseDeviceID(a)
	ub, kb, nb, _ := ParseDeviceID(b)
	return cmp.Or(cmp.Compare(ua, ub), cmp.Compare(ka, kb), cmp.Compare(na, nb))
}

// forget drops ledger entries of pods that no longer exist.
func (b *Broker) forget(live map[types.UID]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ledger = slices.DeleteFunc(b.ledger, func(e *ledgerEntry) bool { return !live[e.key.UID] })
}

// ledgerFor returns the devices this process handed to a container.
func (b *Broker) ledgerFor(key ContainerKey) [numKinds][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [numKinds][]string
	for _, e := range b.ledger {
		if e.key == key {
			out[e.kind] = e.ids
		}
	}
	return out
}

// placementPositions maps the GPU UUIDs of a container's placement to their
// position in it (nil placement: empty map).
func placementPositions(cp *api.ContainerPlacement) map[string]int {
	pos := map[string]int{}
	if cp != nil {
		for i, d := range cp.Devices {
			pos[d.UUID] = i
		}
	}
	return pos
}

// placementOrder orders two GPUs (UUID and NVML index) the way a container
// sees them: the GPUs of its placement first, in placement order, then the
// others by NVML index.
func placementOrder(pos map[string]int, ux string, ix int, uy string, iy int) int {
	px, okx := pos[ux]
	py, oky := pos[uy]
	switch {
	case okx && oky:
		return px - py
	case okx:
		return -1
	case oky:
		return 1
	}
	return ix - iy
}
