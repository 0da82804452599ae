// Package kwok pins kwok (sigs.k8s.io/kwok), which `make demo` builds into
// e2e/bin and runs to play the kubelet of the demo's simulated GPU nodes:
// it keeps their leases and conditions fresh, moves bound pods to Running
// and finishes their deletion, so `kubectl delete pod` completes. It has its
// own module so that its Kubernetes libraries do not move the e2e module's
// (whose change rebuilds the whole control plane).
package kwok
