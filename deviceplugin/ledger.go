package deviceplugin

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// ledgerEntry is what this process handed out in one Allocate call. The
// ledger is the plugin's own memory of the calls kubelet has not yet
// reported through pod-resources (a container being admitted, a finished
// init container); pod-resources wins wherever it knows the devices.
type ledgerEntry struct {
	key  ContainerKey
	kind Kind
	ids  []string // sorted
	resp *pluginapi.ContainerAllocateResponse
}

// record adds one Allocate call to the ledger. Called with mu held.
func (b *Broker) record(key ContainerKey, k Kind, ids []string, resp *pluginapi.ContainerAllocateResponse) {
	b.ledger = append(b.ledger, &ledgerEntry{key: key, kind: k, ids: slices.Sorted(slices.Values(ids)), resp: resp})
}

// fixLedger moves ledger entries to the container pod-resources says got
// the devices (interchangeable pods that kubelet admitted in another order).
// Called with mu held.
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

// forget drops ledger entries of pods that no longer exist.
func (b *Broker) forget(live map[types.UID]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ledger = slices.DeleteFunc(b.ledger, func(e *ledgerEntry) bool { return !live[e.key.UID] })
}

// ledgerMem returns the gpu-mem entry with exactly these (sorted) devices,
// the last one recorded, or nil. Called with mu held.
func (b *Broker) ledgerMem(sorted []string) *ledgerEntry {
	var entry *ledgerEntry
	for _, e := range b.ledger {
		if e.kind == KindMem && slices.Equal(e.ids, sorted) {
			entry = e
		}
	}
	return entry
}
