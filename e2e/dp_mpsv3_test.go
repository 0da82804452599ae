package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// mpsV3Grace is the MPS v3 release grace of the test's manager: short, so
// that a deleted pod's namespace goes within the test's poll.
const mpsV3Grace = 300 * time.Millisecond

// namespaceLimits reads the limits the fake v3 control daemon holds for a
// namespace directory; "" when the namespace does not exist.
func namespaceLimits(t *testing.T, nsDir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(nsDir, "limits"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// TestMPSV3Namespaces runs the device plugin in MPS v3 mode (a v3 daemon
// per GPU, driving the fake nvidia-cuda-mps-control) behind kubelet's own
// device manager, and checks that two pods placed on one GPU by the real
// kube-scheduler and gpuslice extender get two namespaces whose limits are
// their shares, that each container gets only its own namespace's socket
// directory, that the node's GPUs publish binding enforcement, and that
// deleting a pod deletes its namespace. Like TestMPSIsolation it uses
// kubelet's fixed device plugin directory, so it needs root and is not
// parallel.
func TestMPSV3Namespaces(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c)
	node := e.group + "-mpsv3"
	root := t.TempDir()
	m, err := mps.NewManager(mps.Config{Root: root, Scope: mps.ScopeGPU, Version: mps.VersionV3,
		DefaultActiveThreadPercentage: mpsDefaultThreads, ReleaseGrace: mpsV3Grace},
		noShmControl{mps.NewExecControl(buildFakeMPSControl(t, c.RepoRoot()))}, &recordedModes{})
	if err != nil {
		t.Fatal(err)
	}

	found, _ := dpDiscoverer{}.Discover(e.ctx)
	gpus, err := deviceplugin.BuildGPUs(e.ctx, found, c.SliceMiB, m)
	if err != nil {
		t.Fatal(err)
	}
	inv := deviceplugin.NewState(gpus).Inventory(c.SliceMiB, api.IsolationMPS, nil)
	if _, err := c.AddGPUNode(e.ctx, harness.GPUNode{Name: node, Inventory: inv, Labels: map[string]string{groupLabel: e.group}}); err != nil {
		t.Fatal(err)
	}
	e.inv[node] = inv
	prSock := filepath.Join(t.TempDir(), "pod-resources.sock")
	kl := startDPKubelet(t, prSock)
	startMPSDP(t, c, node, prSock, m)

	slicesPerGPU := int64(dpMemMiB) / c.SliceMiB
	e.poll("registration and ListAndWatch", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		if got, want := kl.allocatable(api.ResourceGPUMem), dpGPUs*slicesPerGPU; got != want {
			return false, fmt.Errorf("allocatable gpu-mem %d, want %d", got, want)
		}
		return true, nil
	})
	t.Log("section Enforcement")
	e.poll("published MPS v3 inventory", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		got, err := nodeInventory(ctx, c, node)
		if err != nil {
			return false, err
		}
		for _, g := range got.GPUs {
			if g.Isolation != api.IsolationMPS || g.Enforcement != api.EnforcementBinding || !g.Healthy {
				return false, fmt.Errorf("GPU %d: isolation %q, enforcement %q, healthy %v (%s)", g.Index, g.Isolation, g.Enforcement, g.Healthy, g.Reason)
			}
		}
		return len(got.GPUs) == dpGPUs, nil
	})

	// Namespaces: two pods with different shares, binpacked on one GPU.
	t.Log("section Namespaces")
	pods := []struct {
		name      string
		mem, core int64
	}{
		{"v3-small", 4, 30},
		{"v3-large", 10, 0},
	}
	bound := map[string]*corev1.Pod{}
	nsDir := map[string]string{}
	gpuOf := map[string]string{}
	for _, tc := range pods {
		e.create([]*corev1.Pod{e.one(tc.name, tc.mem, tc.core, 0)}, 1)
		p := e.waitBound(time.Minute, tc.name)[tc.name]
		bound[tc.name] = p
		pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
		if err != nil {
			t.Fatalf("placement of %s: %v", tc.name, err)
		}
		uuid := pl.Containers[0].Devices[0].UUID
		gpuOf[tc.name] = uuid
		got, _ := admitMPS(t, e, kl, p)
		name, err := mps.NamespaceName(device.ContainerRef{PodUID: string(p.UID), Container: p.Spec.Containers[0].Name})
		if err != nil {
			t.Fatal(err)
		}
		dir := mps.NamespaceDir(filepath.Join(root, uuid, "pipe"), name)
		nsDir[tc.name] = dir
		want := mpsView{
			Envs: map[string]string{
				deviceplugin.EnvNVIDIAVisibleDevices: "void",
				deviceplugin.EnvCUDAVisibleDevices:   uuid,
				mps.EnvPipeDirectory:                 mps.DefaultContainerPipeDir,
			},
			Mounts: []mpsMount{
				{ContainerPath: "/dev/shm", HostPath: filepath.Join(root, uuid, "shm")},
				{ContainerPath: mps.DefaultContainerPipeDir, HostPath: dir},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pod %s (%d slices, %d core) on %s: container options (-want +got):\n%s", tc.name, tc.mem, tc.core, uuid, diff)
		}
		threads := tc.core
		if threads == 0 {
			threads = mpsDefaultThreads
		}
		wantLimits := fmt.Sprintf("pinned_memory_limit = \"%dM\"\nactive_thread_percentage = \"%d\"", tc.mem*c.SliceMiB, threads)
		if diff := cmp.Diff(wantLimits, namespaceLimits(t, dir)); diff != "" {
			t.Errorf("pod %s: limits of namespace %s (-want +got):\n%s", tc.name, name, diff)
		}
		t.Logf("pod %s on %s: namespace %s", tc.name, uuid, name)
	}
	if gpuOf["v3-small"] != gpuOf["v3-large"] {
		t.Fatalf("the two pods were expected on one GPU (binpack): %v", gpuOf)
	}
	if nsDir["v3-small"] == nsDir["v3-large"] {
		t.Errorf("two containers share namespace directory %s", nsDir["v3-small"])
	}

	// Release: deleting a pod deletes its namespace, the other one stays.
	t.Log("section Release")
	e.deletePods("v3-small")
	kl.forget(bound["v3-small"])
	e.poll("namespace of the deleted pod deleted", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		if got := namespaceLimits(t, nsDir["v3-small"]); got != "" {
			return false, fmt.Errorf("namespace %s still there: %q", nsDir["v3-small"], got)
		}
		return true, nil
	})
	if namespaceLimits(t, nsDir["v3-large"]) == "" {
		t.Errorf("namespace %s of the live pod was deleted", nsDir["v3-large"])
	}
	if got := m.Namespaces(gpuOf["v3-large"]); len(got) != 1 || !strings.Contains(nsDir["v3-large"], got[0]) {
		t.Errorf("manager's namespaces %v, want only the live pod's", got)
	}
}
