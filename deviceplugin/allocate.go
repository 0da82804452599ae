package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// Broker resolves kubelet's identity-less calls to containers: the I/O
// shell (snapshot.go) around the pure matcher (match.go), with the ledger
// of what it handed out (ledger.go). All methods are serialised by one
// mutex (kubelet calls them one at a time anyway).
type Broker struct {
	node     string
	sliceMiB int64
	strategy Strategy
	cdiKind  string
	state    *State
	iso      device.Isolator
	pods     PodLister
	pr       PodResources

	obs observers

	mu     sync.Mutex
	ledger []*ledgerEntry
}

// NewBroker returns a broker. pr may be nil (no pod-resources: the broker
// relies on its own ledger and cannot tell which pods kubelet knows).
func NewBroker(cfg *Config, state *State, iso device.Isolator, pods PodLister, pr PodResources) *Broker {
	return &Broker{node: cfg.NodeName, sliceMiB: cfg.SliceMiB, strategy: cfg.Strategy, cdiKind: cfg.CDIKind,
		state: state, iso: iso, pods: pods, pr: pr}
}

// distribution groups a call's devices by GPU and checks that they are of
// kind k and on served, healthy GPUs.
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

// respond builds the Allocate response of container c holding mem devices
// d; on a whole-instance GPU the container's instance is the one its IDs
// lie in (checkInstances has checked that they lie in one).
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
		if k, _ := b.instanceSize(u); k > 0 && len(d[u]) > 0 {
			devs[i].Instance = int(unitOf(slices.Min(d[u])) / k)
		}
	}
	var edits *device.ContainerEdits
	var err error
	if r, ok := b.iso.(device.PodReleaser); ok {
		edits, err = r.ContainerEditsFor(device.ContainerRef{PodUID: string(c.key.UID), Container: c.key.Container}, devs)
	} else {
		edits, err = b.iso.ContainerEdits(devs)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gpuslice: %s isolation for %s: %w", b.iso.Mode(), c.key, err)
	}
	return containerResponse(b.strategy, b.cdiKind, uuids, edits), devs, nil
}

// Allocate handles one container request of kind k. A refusal is counted
// and recorded as an event on the pod it was for when the matcher knows it,
// else on the node.
func (b *Broker) Allocate(ctx context.Context, k Kind, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	start := time.Now()
	resp, err := b.allocate(ctx, k, ids)
	b.obs.metrics.Allocate(k.Resource(), time.Since(start), err)
	if err != nil {
		b.refused(ctx, EventAllocateRefused, "Allocate", err)
	}
	return resp, err
}

func (b *Broker) allocate(ctx context.Context, k Kind, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
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
	c, err := s.match(k, d)
	if err != nil {
		logger.Info("Allocate refused", "resource", k.Resource(), "devices", len(ids), "err", err)
		return nil, err
	}
	resp := &pluginapi.ContainerAllocateResponse{}
	if k == KindMem {
		if _, err := b.checkInstances(s, c, d); err != nil {
			logger.Info("Allocate refused", "resource", k.Resource(), "devices", len(ids), "err", err)
			return nil, err
		}
		if resp, _, err = b.respond(c, d); err != nil {
			return nil, err
		}
	}
	b.record(c.key, k, ids, resp)
	logger.Info("Allocated", "resource", k.Resource(), "pod", klog.KObj(c.pod), "container", c.key.Container,
		"init", c.key.Init, "gpus", d.gpus(), "units", len(ids), "exactPlacement", c.exact(k, d))
	return resp, nil
}
