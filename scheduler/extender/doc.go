// Package extender owns the gpuslice scheduler extender service: the verbs
// kube-scheduler calls through the extenders stanza of its
// KubeSchedulerConfiguration (filter.go, prioritize.go, preempt.go,
// bind.go) and their HTTP routes (http.go), with what guards them: the
// readiness gate (readiness.go), caller authentication (gates.go) and body
// bounds (body.go). It also owns the memory of filtered pods that
// prioritize and bind rely on (pending.go), the reading of a pod's gpuslice
// request (request.go: with the VM-sandbox isolation mode its runtime class
// maps to, WithRuntimeClassModes, so every verb keeps container pods off
// vgpu and passthrough GPUs and VM pods on GPUs of their mode), and the
// per-profile placement policies (policies.go).
//
// It decides on the state of package cache. Filter and prioritize never call
// the API server. Bind makes one API call: a Binding that carries the
// placement annotation, which kube-apiserver merges into the pod in the same
// write that sets its node (and, only when that call fails ambiguously, one
// read of the pod). Bind follows only this process's own filter.
package extender
