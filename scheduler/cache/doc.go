// Package cache owns the scheduler extender's informer-fed state: the GPU
// inventory of every node (from its gpuslice.io/inventory annotation) and
// the GPU shares every pod holds (from its gpuslice.io/placement annotation,
// or an assumption made at bind).
//
// Cache (cache.go) holds one lock. No API call and no blocking I/O happens
// under it. Its state is rebuilt from the informers alone (informers.go): the
// annotations are the single source of truth, so an extender that restarts
// loses nothing once the informers have synced.
package cache
