// Command demo is `make demo`, gpuslice's main job: it starts a local
// control plane (etcd, kube-apiserver, the gpuslice extender and
// kube-scheduler, see package harness) with three simulated GPU nodes
// (8x A100-40GB, 8x H100-80GB, 4x T4-16GB) whose kubelet is kwok
// (sigs.k8s.io/kwok: bound pods go Running, and a deleted pod goes away),
// creates the example pods from manifests/examples/, waits until each is
// Running or has a FailedScheduling event, prints the per-node, per-GPU
// inspect view, and then keeps the
// cluster running, with a kubectl command line to look at it, until Ctrl-C.
// With DEMO_EXIT=1 it stops right after the view.
//
// With -inspect it starts nothing: it prints the inspect view of the
// cluster $KUBECONFIG (or ~/.kube/config) points at, the demo's or a real
// one, and exits (`make inspect`).
//
// It builds nothing: the Makefile builds the binaries and passes their
// directories in K8S_BIN and GPUSLICE_BIN. Every process it starts is
// stopped when it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/internal/inspect"
)

// namespace is where the example pods go, so that a plain `kubectl get
// pods` shows them.
const namespace = "default"

func main() {
	inspectOnly := flag.Bool("inspect", false, "Only print the per-GPU inspect view of the cluster $KUBECONFIG (or ~/.kube/config) points at.")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *inspectOnly {
		err = inspectCluster(ctx, os.Stdout)
	} else {
		err = run(ctx, os.Stdout, os.Getenv("DEMO_EXIT") == "1")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		klog.Flush()
		os.Exit(1)
	}
}

// run starts the cluster, shows the examples, and blocks until ctx is done
// (unless exit is set). The cluster is stopped before it returns.
func run(ctx context.Context, out io.Writer, exit bool) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	fmt.Fprintln(out, "Starting etcd, kube-apiserver, the gpuslice extender and kube-scheduler on loopback...")
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := harness.New(startCtx, harness.Options{NoSignalHandler: true, Logf: logf})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "Stopping the control plane...")
		c.Stop()
	}()
	fmt.Fprintln(out, "Starting kwok, the kubelet of the simulated nodes...")
	if err := c.StartKwok(startCtx); err != nil {
		return fmt.Errorf("start kwok: %w", err)
	}

	for _, n := range []struct {
		name  string
		shape harness.Shape
	}{{"gpu-a100-0", harness.A100x8()}, {"gpu-h100-0", harness.H100x8()}, {"gpu-t4-0", harness.T4x4()}} {
		node := harness.GPUNode{Name: n.name, Inventory: n.shape.Inventory(n.name, c.SliceMiB), Labels: map[string]string{harness.KwokNodeLabel: "fake"}}
		if _, err := c.AddGPUNode(ctx, node); err != nil {
			return err
		}
		fmt.Fprintf(out, "node %s: %d x %s\n", n.name, n.shape.GPUs, n.shape.Model)
	}

	pods, err := examplePods(c.RepoRoot())
	if err != nil {
		return err
	}
	objs := make([]runtime.Object, len(pods))
	for i, p := range pods {
		objs[i] = p
	}
	if err := c.CreateObjects(ctx, namespace, objs); err != nil {
		return err
	}
	fmt.Fprintf(out, "created %d example pods from manifests/examples/\n\n", len(pods))

	status, err := waitSettled(ctx, c, pods, 2*time.Minute)
	if err != nil {
		return err
	}
	for _, s := range status {
		fmt.Fprintln(out, s)
	}
	fmt.Fprintln(out)

	if err := renderView(ctx, out, c.Client); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nLook at the cluster with:\n\n  KUBECONFIG=%s %s get pods -o wide\n\n", c.KubeconfigPath, c.KubectlPath())
	fmt.Fprintf(out, "Delete a pod (kwok plays the kubelet, so the delete completes and frees its shares):\n\n  KUBECONFIG=%s %s delete pod share-8g\n\n", c.KubeconfigPath, c.KubectlPath())
	fmt.Fprintf(out, "Show the per-GPU view again (while the cluster runs):\n\n  KUBECONFIG=%s make inspect\n\n", c.KubeconfigPath)
	fmt.Fprintf(out, "Component logs: %s/*.log\n", c.Dir)
	if exit {
		fmt.Fprintln(out, "DEMO_EXIT=1: not waiting for Ctrl-C.")
		return nil
	}
	fmt.Fprintln(out, "The cluster keeps running until Ctrl-C.")
	// Block until interrupted, or until a component dies.
	err = wait.PollUntilContextCancel(ctx, time.Second, false, func(context.Context) (bool, error) {
		for _, name := range []string{harness.Etcd, harness.KubeAPIServer, harness.Extender, harness.KubeScheduler, harness.Kwok} {
			if !c.Running(name) {
				return false, fmt.Errorf("%s exited; see %s", name, c.LogPath(name))
			}
		}
		return false, nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	c.DumpLogs(logf, 20)
	return err
}

// renderView prints the per-node, per-GPU inspect view of a cluster.
func renderView(ctx context.Context, out io.Writer, client kubernetes.Interface) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	all, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	return inspect.Render(out, inspect.Build(nodes.Items, all.Items))
}

// inspectCluster prints the inspect view of the kubeconfig's cluster.
func inspectCluster(ctx context.Context, out io.Writer) error {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return renderView(ctx, out, client)
}

// examplePods decodes the pods of manifests/examples/*.yaml, in file order.
func examplePods(repo string) ([]*corev1.Pod, error) {
	files, err := filepath.Glob(filepath.Join(repo, "manifests", "examples", "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests/examples/*.yaml under %s", repo)
	}
	slices.Sort(files)
	var pods []*corev1.Pod
	for _, f := range files {
		objs, err := harness.DecodeManifest(f)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			p, ok := o.(*corev1.Pod)
			if !ok {
				return nil, fmt.Errorf("%s: %T is not a Pod", f, o)
			}
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// waitSettled waits until every pod is Running on its node (kwok runs it)
// or is pending with a FailedScheduling event, and returns one status line
// per pod.
func waitSettled(ctx context.Context, c *harness.Cluster, pods []*corev1.Pod, timeout time.Duration) ([]string, error) {
	var lines []string
	var pending []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		lines, pending = lines[:0], pending[:0]
		for _, want := range pods {
			p, err := c.Client.CoreV1().Pods(namespace).Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				return false, fmt.Errorf("get pod %s: %w", want.Name, err)
			}
			if p.Spec.NodeName != "" {
				if p.Status.Phase != corev1.PodRunning {
					pending = append(pending, p.Name+" (bound, "+string(p.Status.Phase)+")")
					continue
				}
				lines = append(lines, fmt.Sprintf("%-16s Running on %s: %s", p.Name, p.Spec.NodeName, describePlacement(p)))
				continue
			}
			evs, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name + ",reason=FailedScheduling"})
			if err != nil {
				return false, fmt.Errorf("list events: %w", err)
			}
			if len(evs.Items) == 0 {
				pending = append(pending, p.Name)
				continue
			}
			lines = append(lines, fmt.Sprintf("%-16s Pending, FailedScheduling: %s", p.Name, evs.Items[len(evs.Items)-1].Message))
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for pods %v to be scheduled or rejected: %w", pending, err)
	}
	return lines, nil
}

// describePlacement summarises a pod's placement annotation.
func describePlacement(p *corev1.Pod) string {
	raw, ok := p.Annotations[api.AnnotationPlacement]
	if !ok {
		return "no GPU placement"
	}
	pl, err := api.ParsePlacement(raw)
	if err != nil {
		return fmt.Sprintf("bad placement: %v", err)
	}
	var parts []string
	for _, ctr := range pl.Containers {
		var gpus []string
		for _, d := range ctr.Devices {
			gpus = append(gpus, fmt.Sprintf("gpu%d(%ds/%dc)", d.Index, d.Slices, d.Core))
		}
		name := ctr.Name
		if ctr.Init {
			name = "init:" + name
		}
		parts = append(parts, name+"="+strings.Join(gpus, "+"))
	}
	return strings.Join(parts, " ")
}
