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
//   - kube-apiserver with static token authentication for the admin (in
//     system:masters) and system:kube-scheduler, RBAC authorization,
//     generated serving certificate and service-account signing keys, and
//     the ServiceAccount and TaintNodesByCondition admission plugins
//     disabled (there is no controller-manager to create default service
//     accounts and no kubelet to clear the not-ready taint).
//   - manifests/rbac.yaml, applied as-is, and gpuslice's identities: the
//     namespace gpuslice-system, the service accounts gpuslice-extender and
//     gpuslice-device-plugin with least-privilege RBAC, and a token for each
//     from the TokenRequest API. The extender runs with its token
//     (Cluster.ExtenderClient is the same identity); the device plugin tests
//     run the plugin in process with Cluster.DevicePluginClient.
//   - the admission policy manifests/admission/policy.yaml, applied before
//     anything else and waited for until the API server enforces it, so
//     every test runs under it. SuspendPolicy removes one binding for a
//     test that shows what happens when the policy is bypassed.
//   - the gpuslice extender (bin/gpuslice-extender) serving HTTPS with a
//     certificate from a throw-away CA, and verifying client certificates
//     against that CA (--client-ca-file, when the binary has the flag).
//   - kube-scheduler with manifests/scheduler-config.yaml, of which only the
//     kubeconfig path and the extender at the shipped URL
//     (http://127.0.0.1:8888/) are changed: its URL, enableHTTPS and a
//     tlsConfig with kube-scheduler's client certificate and the CA
//     (mutual TLS; Cluster.ExtenderTLS holds the files).
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
