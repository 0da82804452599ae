package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// dpNode is an env with one node run by the device plugin (in process, as
// its service account) under kubelet's device manager.
type dpNode struct {
	*env
	node string
	kl   *dpKubelet
	dp   *dpPlugin
}

// startDPCluster starts a cluster (default options) and a device-plugin
// node on it, for a test that owns the kubelet plugin directory.
func startDPCluster(t *testing.T) (*harness.Cluster, *dpNode) {
	t.Helper()
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{})
	return c, startDPNode(t, c)
}

// startDPNode creates the env, the node with the fake GPUs' inventory, the
// in-process kubelet and the device plugin, and waits until the plugin has
// registered every device.
func startDPNode(t *testing.T, c *harness.Cluster) *dpNode {
	t.Helper()
	e := newEnv(t, c)
	d := &dpNode{env: e, node: e.group + "-dp"}
	inv := dpInventory(t, c.SliceMiB)
	if _, err := c.AddGPUNode(e.ctx, harness.GPUNode{Name: d.node, Inventory: inv, Labels: map[string]string{groupLabel: e.group}}); err != nil {
		t.Fatal(err)
	}
	e.inv[d.node] = inv
	prSock := filepath.Join(t.TempDir(), "pod-resources.sock")
	d.kl = startDPKubelet(t, prSock)
	d.dp = startDP(t, c, d.node, prSock)
	want := int64(dpGPUs) * (int64(dpMemMiB) / c.SliceMiB)
	e.poll("device plugin registered", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		got := d.kl.allocatable(api.ResourceGPUMem)
		return got == want, fmt.Errorf("allocatable gpu-mem %d, want %d", got, want)
	})
	return d
}

// admit admits a pod through the device manager and returns each
// container's GPUs as the runtime gets them (visibleGPUs), keyed
// "init/name" or "app/name".
func (d *dpNode) admit(p *corev1.Pod) (map[string][]string, error) {
	if err := d.kl.admit(d.ctx, p); err != nil {
		return nil, err
	}
	envs := map[string][]string{}
	for _, cs := range []struct {
		list []corev1.Container
		kind string
	}{{p.Spec.InitContainers, "init"}, {p.Spec.Containers, "app"}} {
		for i := range cs.list {
			opts, err := d.kl.runOptions(d.ctx, p, &cs.list[i])
			if err != nil {
				return nil, fmt.Errorf("run options of %s/%s: %w", p.Name, cs.list[i].Name, err)
			}
			gpus, err := visibleGPUs(opts)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", p.Name, cs.list[i].Name, err)
			}
			if gpus != nil {
				envs[cs.kind+"/"+cs.list[i].Name] = gpus
			}
		}
	}
	return envs, nil
}

// admitChecked admits a bound pod and checks, polling, that its allocation
// record equals its placement and that every container sees exactly the
// GPUs the record gives it. It returns the pod as it ends up.
func (d *dpNode) admitChecked(name string) *corev1.Pod {
	d.t.Helper()
	p, err := d.c.Client.CoreV1().Pods(d.ns).Get(d.ctx, name, metav1.GetOptions{})
	if err != nil {
		d.t.Fatal(err)
	}
	envs, err := d.admit(p)
	if err != nil {
		d.t.Fatalf("admit %s: %v", name, err)
	}
	var got *corev1.Pod
	var alloc *api.Allocation
	d.poll("allocation of "+name+" equals its placement", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		d.invariant(ctx, nil)
		got, alloc, err = podAllocation(ctx, d.c.Client, d.ns, name)
		return err == nil, err
	})
	for _, ac := range alloc.Containers {
		kind := "app/"
		if ac.Init {
			kind = "init/"
		}
		if want := containerGPUs(alloc.Containers, ac.Name, ac.Init); !slices.Equal(envs[kind+ac.Name], want) {
			d.t.Errorf("pod %s container %s%s: visible GPUs %v, allocation %v", name, kind, ac.Name, envs[kind+ac.Name], want)
		}
	}
	d.t.Logf("pod %s admitted: %+v", name, alloc.Containers)
	return got
}
