// Package extender owns the gpuslice scheduler extender service: the verbs
// kube-scheduler calls through the extenders stanza of its
// KubeSchedulerConfiguration (filter.go, prioritize.go, preempt.go,
// bind.go), their HTTP routes (http.go), the reading of a pod's gpuslice
// request (request.go) and the per-profile placement policies (policies.go).
//
// It decides on the state of package cache. Filter and prioritize never call
// the API server. Bind makes exactly one API call: a Binding that carries
// the placement annotation, which kube-apiserver merges into the pod in the
// same write that sets its node.
package extender
