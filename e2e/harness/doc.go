// Package harness owns the local control plane of the gpuslice end-to-end
// tests and of `make demo`: it starts a real etcd, kube-apiserver, the
// gpuslice scheduler extender and kube-scheduler on random loopback ports,
// creates simulated GPU nodes, and stops everything again with no process
// left behind.
//
// # Components
//
//   - etcd (built from go.etcd.io/etcd/server/v3 into e2e/bin) with a data
//     directory under the cluster's temporary directory.
//   - kube-apiserver with static token authentication (one token per user:
//     an admin in system:masters, system:kube-scheduler, and the extender as
//     the service account kube-system/gpuslice-extender), RBAC authorization,
//     generated serving certificate and service-account signing keys, and
//     the ServiceAccount and TaintNodesByCondition admission plugins
//     disabled (there is no controller-manager to create default service
//     accounts and no kubelet to clear the not-ready taint).
//   - manifests/rbac.yaml, applied as-is: it grants the extender its rights.
//   - the gpuslice extender (bin/gpuslice-extender).
//   - kube-scheduler with manifests/scheduler-config.yaml, of which only the
//     extender URL (http://127.0.0.1:8888/) and the kubeconfig path
//     (/etc/kubernetes/scheduler.conf) are replaced.
//
// Each component runs in its own process group, logs to DIR/<name>.log, and
// is started from one OS thread that lives as long as the cluster, with
// Pdeathsig set: if the test binary dies (a panic, go test's timeout, a
// SIGKILL) the kernel kills the components too. Stop terminates every
// process group (SIGTERM, then SIGKILL after a grace period) and waits for
// it; Start registers Stop with t.Cleanup, and unless Options.NoSignalHandler
// is set, SIGINT and SIGTERM stop the cluster before the process exits.
//
// # Binaries
//
// Options.K8sBin (else $K8S_BIN, else <repo>/e2e/bin) holds etcd,
// kube-apiserver and kube-scheduler; Options.GPUSliceBin (else
// $GPUSLICE_BIN, else <repo>/bin) holds gpuslice-extender. A missing binary
// is an error that says how to build it (`make control-plane`, `make
// build`); the harness never skips.
//
// # Simulated GPU nodes
//
// AddGPUNode creates a Node whose capacity and allocatable advertise the
// gpuslice resources of an api.Inventory (gpu-mem: the sum of slices,
// gpu-core: the sum of core units, gpu-count: the sum of sharing slots),
// writes the inventory to the gpuslice.io/inventory annotation, sets the
// Ready condition and removes any not-ready taint. Shape describes a GPU
// server (A100x8, H100x8, T4x4 are provided) and builds its inventory.
//
// Readiness waits poll with a deadline; nothing sleeps to wait for state.
package harness
