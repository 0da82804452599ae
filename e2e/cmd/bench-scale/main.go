// Command bench-scale is `make bench-scale`: it measures how fast
// kube-scheduler schedules GPU-share pods with and without the gpuslice
// extender, on the e2e harness's real etcd, kube-apiserver and
// kube-scheduler with simulated GPU nodes (Node objects with an inventory
// and capacity; no kubelet, pods stay bound and Pending).
//
// It creates -nodes 8-GPU nodes in parallel, then runs these phases, each
// creating -pods gpu-mem pods concurrently into a fresh namespace and timing
// them from the first creation to the last binding:
//
//	A   kube-scheduler alone (the shipped configuration without its
//	    extenders stanza: gpuslice.io/gpu-mem is a plain extended resource)
//	B   kube-scheduler with the gpuslice extender as shipped
//	A'  kube-scheduler alone again, so drift on a noisy machine shows
//	A0  kube-scheduler alone with its default percentageOfNodesToScore
//	M   (with -memory-pods) the extender alone with that many placed pods,
//	    for its resident memory
//
// Between phases every pod is deleted. It prints a line per phase, the
// extender's per-verb latency quantiles from its own metrics, its peak RSS
// and CPU seconds, and last one line:
//
//	RESULT nodes=<n> pods=<n> baseline_pods_per_s=<x> extender_pods_per_s=<y> ratio=<y/x> overcommitted=<n> extender_peak_rss_mib=<m>
//
// where x is the mean of A and A'. Every phase uses leaderElect: false (a
// scheduler started after another stopped would otherwise wait for its
// lease); nothing else departs from manifests/scheduler-config.yaml.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// options are the command's flags.
type options struct {
	nodes      int
	pods       int
	memoryPods int
	workers    int
	skipA0     bool
	profileDir string
	skipAlone  bool
	timeout    time.Duration
	// policy is the extender's --policy; empty: the install manifest's.
	policy string
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", envInt("NODES", 1000), "Simulated 8-GPU nodes ($NODES).")
	flag.IntVar(&o.pods, "pods", envInt("PODS", 10000), "Pods per phase ($PODS).")
	flag.IntVar(&o.memoryPods, "memory-pods", envInt("MEMORY_PODS", 0), "Placed pods for the memory phase M; 0 skips it ($MEMORY_PODS).")
	flag.IntVar(&o.workers, "workers", 64, "Concurrent creators of nodes and pods.")
	flag.BoolVar(&o.skipA0, "skip-default-percentage", false, "Skip phase A0 (kube-scheduler's default percentageOfNodesToScore).")
	flag.StringVar(&o.profileDir, "profile-dir", "", "Run the extender with --profiling and save a 30 s CPU profile taken in phase B and a heap profile at its end here.")
	flag.BoolVar(&o.skipAlone, "only-extender", false, "Run phase B (and M) only, e.g. to profile the extender.")
	flag.StringVar(&o.policy, "policy", os.Getenv("POLICY"), "The extender's placement policy ($POLICY); empty: the one the install manifest ships (--policy of manifests/deploy/gpuslice.yaml).")
	flag.DurationVar(&o.timeout, "phase-timeout", 30*time.Minute, "Longest a phase may take.")
	klog.InitFlags(nil)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-scale: %v\n", err)
		klog.Flush()
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	var v int
	if s := os.Getenv(name); s != "" {
		if _, err := fmt.Sscan(s, &v); err == nil && v > 0 {
			return v
		}
	}
	return def
}
