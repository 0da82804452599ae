package cache

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/internal/tick"
)

// DefaultGrace is how long a bound pod's old shares stay charged after the
// device plugin's reconcile moved them.
const DefaultGrace = 2 * time.Minute

// podState says how sure the cache is of a pod's placement.
type podState int

const (
	// assumed: the extender chose the GPUs and is binding (or has bound) the
	// pod, but the informer has not shown the bound pod yet.
	assumed podState = iota
	// confirmed: the informer shows the pod bound with this placement.
	confirmed
	// retired: shares a bound pod held before the device plugin moved
	// them; charged until the grace period ends.
	retired
)

// podEntry is a set of GPU shares one pod holds (or held, when retired).
type podEntry struct {
	uid       types.UID
	key       string // namespace/name, for logs
	node      string
	placement *api.Placement
	// req is the pod's request: it tells the charge rule which init
	// containers are sidecars.
	req *api.PodRequest
	// charges are what the entry holds on its node; nil while the node (or
	// its inventory) is unknown, or when the placement does not match it.
	charges []allocator.Charge
	state   podState
	// gen identifies the entry, so a stale Forget cannot drop a newer one.
	gen uint64
	// deadline is when an assumed entry expires unconfirmed, or a retired
	// one stops being charged.
	deadline time.Time
}

// nodeEntry is a node and the entries placed on it.
type nodeEntry struct {
	// inv is the node's usable inventory; nil when it has none, and then
	// alloc is nil and err says why.
	inv   *api.Inventory
	alloc *allocator.Node
	err   string
	pods  map[types.UID]struct{}
	// retired holds the generations of the node's retired entries.
	retired map[uint64]struct{}
	// lastCap is the capacity of each GPU of the previous inventory, for
	// the placeholder of a GPU that vanished.
	lastCap map[string]allocator.Units
	// placeholder marks an entry made for pods whose node the informer has
	// not shown yet; it is dropped with its last pod.
	placeholder bool
	// idx is the entry's position in the fit memos (fitmemo.go), unique
	// among live entries and reused after the entry is deleted.
	idx int
	// version changes with every change of inv, err or alloc; versions
	// are unique across the cache's life, so a memo of an older entry at
	// the same idx never matches (touchLocked).
	version uint64
}

// Option configures a Cache.
type Option func(*Cache)

// WithClock sets the clock Run expires reservations on (default: the real
// clock).
func WithClock(clk clock.WithTicker) Option { return func(c *Cache) { c.clock = clk } }

// WithGrace sets how long moved shares stay charged (default DefaultGrace).
func WithGrace(d time.Duration) Option { return func(c *Cache) { c.grace = d } }

// Cache is the extender's view of GPU inventory and placements; see the
// package documentation for its contract. It is safe for concurrent use.
type Cache struct {
	sliceMiB int64
	ttl      time.Duration
	grace    time.Duration
	clock    clock.WithTicker
	logger   klog.Logger

	mu      sync.RWMutex
	nodes   map[string]*nodeEntry
	pods    map[types.UID]*podEntry
	retired map[uint64]*podEntry
	gen     uint64
	// version is the last node-entry version handed out; freeIdx and
	// nextIdx hand out entry positions.
	version uint64
	freeIdx []int
	nextIdx int

	// memos are FitNodes' reusable outcomes (fitmemo.go); lock-free, so
	// FitNodes takes no second lock under mu.
	memos fitMemos
}

// New returns an empty cache. sliceMiB is the cluster-wide slice size: a
// node whose inventory uses another one is not schedulable. ttl bounds how
// long an assumption lives unconfirmed.
func New(logger klog.Logger, sliceMiB int64, ttl time.Duration, opts ...Option) *Cache {
	c := &Cache{
		sliceMiB: sliceMiB,
		ttl:      ttl,
		grace:    DefaultGrace,
		clock:    clock.RealClock{},
		logger:   logger,
		nodes:    map[string]*nodeEntry{},
		pods:     map[types.UID]*podEntry{},
		retired:  map[uint64]*podEntry{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Run expires reservations and retired shares on the cache's clock until
// ctx ends.
func (c *Cache) Run(ctx context.Context) {
	period := min(c.ttl, c.grace) / 2
	if period <= 0 {
		period = time.Second
	}
	tick.Run(ctx, c.clock.NewTicker(period), func() { c.Cleanup(c.clock.Now()) })
}

// Cleanup frees the assumptions whose deadline is at or before now (their
// bind never took effect) and the retired shares whose grace period has
// ended.
func (c *Cache) Cleanup(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, p := range c.pods {
		if p.state == assumed && !now.Before(p.deadline) {
			c.logger.Info("Assumed placement expired unconfirmed; freeing its GPU shares", "pod", p.key, "node", p.node)
			c.removePodLocked(uid, p)
		}
	}
	for gen, p := range c.retired {
		if !now.Before(p.deadline) {
			c.logger.V(2).Info("Grace period over; freeing a pod's old GPU shares", "pod", p.key, "node", p.node)
			c.removeRetiredLocked(gen, p)
		}
	}
}
