//go:build tools

// Package tools pins the real Kubernetes control-plane components that the
// end-to-end harness builds into e2e/bin: kube-apiserver, kube-scheduler and
// kubectl from k8s.io/kubernetes, and etcd (see tools/etcd).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
