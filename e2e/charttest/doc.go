// Package charttest applies the gpuslice Helm chart, rendered with Helm's Go
// SDK, to a real kube-apiserver started by package harness. It is a package
// of its own because Helm's SDK links Go's plugin package, which makes the
// linker bind every symbol at start: in package e2e, whose binary also
// links go-nvml (resolved lazily, NVML being absent), that would stop the
// test binary from starting on machines without an NVIDIA driver.
package charttest
