// Package scheduler owns the gpuslice scheduler extender: the HTTP service
// kube-scheduler calls through the extenders stanza of its
// KubeSchedulerConfiguration (filter, prioritize, preempt, bind), and the
// informer-backed cache of GPU inventory and placements it decides on.
//
// The cache (cache.go) holds one lock. No API call and no blocking I/O
// happens under it. Its state is rebuilt from the informers alone: the node
// inventory annotations and the pod placement annotations are the single
// source of truth, so an extender that restarts loses nothing.
//
// Filter and prioritize never call the API server. Bind makes exactly one
// API call: a Binding that carries the placement annotation, which
// kube-apiserver merges into the pod in the same write that sets its node.
package scheduler
