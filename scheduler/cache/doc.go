// Package cache owns the scheduler extender's informer-fed state: the GPU
// inventory of every node (from its gpuslice.io/inventory annotation) and
// the GPU shares every pod holds (from its gpuslice.io/placement annotation,
// or an assumption made at bind). Its state is rebuilt from the informers
// alone: the annotations are the single source of truth, so an extender
// that restarts loses nothing once the informers have synced.
//
// # Contract
//
// Like kube-scheduler's cache (pkg/scheduler/backend/cache/interface.go), a
// pod's shares go through these states:
//
//		              +-------------------------------------------+
//		              |                 OnPod (bound, consistent) |
//		              |                                           v
//		Initial -> Assumed --OnPod (bound)--> Confirmed --OnPod (terminal) / RemovePod--> Deleted
//		              |                           |
//		   Forget /   |                           | device-plugin reconcile moves the shares:
//		   Cleanup(now) past the deadline         | the new shares are charged at once, the old
//		              v                           v ones stay charged as Retired until now+grace
//		           Deleted                     Retired --Cleanup(now)--> Deleted
//
//	  - Assume records the placement the extender chose, before the Binding
//	    is sent, so that the next decisions see it. The reservation gets a
//	    deadline (now + TTL). Assume re-checks under the lock that the shares
//	    are still free (another bind may have taken them since the caller's
//	    Node copy); it takes no policy or fitting logic in.
//	  - Forget drops an assumption whose Binding definitely failed.
//	  - Confirm happens when the informer shows the bound pod (OnPod) with the
//	    same placement; a confirmed pod has no deadline.
//	  - Expire: Cleanup(now) frees assumptions past their deadline (the bind
//	    never took effect) and retired shares past their grace period. Time is
//	    an argument, so tests drive it; Run calls Cleanup on the injected
//	    clock.
//
// # What is charged
//
// A placement is charged only when it is consistent with the pod's own
// request (api.Placement.ConsistentWith: the pod's node, its GPU containers
// by name and init flag, each on as many GPUs as it asks with exactly its
// per-GPU share). A CPU-only pod's placement charges nothing. The charge on
// each GPU follows api.PodCharge (app sum, sidecars for the pod's life,
// init peaks).
//
// Once a pod is charged, a new placement annotation that would move or
// shrink its charges is ignored (and logged), unless it is the device
// plugin's reconcile: the new placement is consistent and equals the pod's
// gpuslice.io/allocated record, which the plugin writes in the same patch.
// Removing the annotation does not free the shares either; the pod's
// deletion or terminal phase does. When shares legitimately move, the old
// ones stay charged for the grace period, so no window exists in which a
// share looks free while a container may still use it.
//
// A GPU that vanishes from a node's inventory while pods hold shares on it
// stays as a placeholder (allocator.Device.Placeholder): never chosen, and
// the pods' shares on it and on the node's other GPUs stay charged. It goes
// when no pod holds a share on it.
//
// # Readiness
//
// The cache is complete only once both informers have synced and their
// initial lists have been applied. The extender service answers its verbs
// with a retryable "not ready" error until then (the readiness gate lives
// in the extender service and app, not here); callers must not serve
// decisions from a cache that is not complete.
//
// # Queries
//
// Callers ask for what they need, under the cache's read lock, and get
// values, never the cache's internals: FitNodes (fit a request on these
// nodes), Node (a copy of one node to choose GPUs on before Assume),
// FreeAfterEvicting (a copy of a node without some pods' shares, for
// preemption), Snapshot (every node's free units), Stats and HasPod.
//
// FitNodes remembers, for reusable policies (allocator.Revision) and the
// last few distinct requests, each node's outcome with the node entry's
// version and the policy's revision; every change of a node's inventory or
// charges gives it a new version, and a learning policy's new published
// distribution a new revision, so an outcome is reused only on a node that
// has not changed. An outcome of an earlier revision (up to eight
// publications old) is still served while each call refits those in a
// window of node entries that sweeps them all in 16 calls, so that a new
// distribution does not make one call refit every node: the answers of a
// few calls lag the distribution, in their scores and, for a pod whose
// containers compete for a node's GPUs, possibly in whether it fits there;
// bind fits again with the current distribution (fitmemo.go).
// The memos are taken and returned with atomic operations, not a lock.
//
// # Locking
//
// One lock guards the state. It is a leaf: nothing under it blocks, calls
// the API server, or takes another lock.
package cache
