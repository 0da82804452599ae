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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
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

// fakeCgroupRoot is a cgroup v2 root for the device plugin: dmem.capacity
// with a region per dpDiscoverer GPU, and the cgroups of started
// containers.
type fakeCgroupRoot struct {
	root string
	// regions maps GPU UUID to its dmem region.
	regions map[string]string
}

func newFakeCgroupRoot(t *testing.T) *fakeCgroupRoot {
	t.Helper()
	cg := &fakeCgroupRoot{root: t.TempDir(), regions: map[string]string{}}
	gpus, _ := dpDiscoverer{}.Discover(context.Background())
	var capacity strings.Builder
	for _, g := range gpus {
		cg.regions[g.UUID] = "nvidia/0000" + g.PCIBusID + "/vidmem"
		fmt.Fprintf(&capacity, "%s %d\n", cg.regions[g.UUID], g.MemoryMiB<<20)
	}
	if err := os.WriteFile(filepath.Join(cg.root, dmem.CapacityFile), []byte(capacity.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cg
}

// start plays the runtime and kubelet for p's first container: its
// cgroupfs-driver cgroup with an unlimited dmem.max, then the pod status
// with container ID containerd://<id>. It returns the dmem.max path.
func (cg *fakeCgroupRoot) start(t *testing.T, e *env, p *corev1.Pod, id string) string {
	t.Helper()
	live, err := e.c.Client.CoreV1().Pods(p.Namespace).Get(e.ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cg.root, "kubepods", strings.ToLower(string(live.Status.QOSClass)), "pod"+string(p.UID), id)
	if live.Status.QOSClass == corev1.PodQOSGuaranteed {
		dir = filepath.Join(cg.root, "kubepods", "pod"+string(p.UID), id)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	maxFile := filepath.Join(dir, dmem.MaxFile)
	var unlimited strings.Builder
	for _, r := range cg.regions {
		unlimited.WriteString(r + " max\n")
	}
	if err := os.WriteFile(maxFile, []byte(unlimited.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	live.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, ContainerID: "containerd://" + id,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	if _, err := e.c.Client.CoreV1().Pods(p.Namespace).UpdateStatus(e.ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return maxFile
}

// newV3Manager is an MPS v3 manager with a daemon per GPU under root,
// driving the fake control program, whose hard memory limits go to the
// dmem.max files of cg.
func newV3Manager(t *testing.T, c *harness.Cluster, root string, cg *fakeCgroupRoot) *mps.Manager {
	t.Helper()
	m, err := mps.NewManager(mps.Config{Root: root, Scope: mps.ScopeGPU, Version: mps.VersionV3,
		DefaultActiveThreadPercentage: mpsDefaultThreads, ReleaseGrace: mpsV3Grace,
		HardLimits: &dmem.Enforcer{Root: cg.root, Limiter: dmem.FileLimiter{Root: cg.root}}},
		noShmControl{mps.NewExecControl(buildFakeMPSControl(t, c.RepoRoot()))}, &recordedModes{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMPSV3Namespaces: the device plugin in MPS v3 mode behind kubelet's
// own device manager, two pods placed on one GPU by the real kube-scheduler
// and gpuslice extender.
//   - Each gets a namespace whose limits are its share, and only that
//     namespace's socket directory.
//   - The GPUs publish enforcement binding: the plugin sets hard limits.
//   - A started container's cgroup gets its share as its hard limit.
//   - Deleting a pod deletes its namespace.
//
// It uses kubelet's fixed device plugin directory (root, not parallel).
func TestMPSV3Namespaces(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c)
	node, root, cg := e.group+"-mpsv3", t.TempDir(), newFakeCgroupRoot(t)
	m := newV3Manager(t, c, root, cg)
	kl := startMPSNode(t, e, node, m)

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
	// threads is the namespace's active thread percentage: the core share,
	// or the default.
	pods := []struct {
		name               string
		mem, core, threads int64
	}{
		{name: "v3-small", mem: 4, core: 30, threads: 30},
		{name: "v3-large", mem: 10, threads: mpsDefaultThreads},
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
		wantLimits := fmt.Sprintf("pinned_memory_limit = \"%dM\"\nactive_thread_percentage = \"%d\"\nclient_priority = \"0\"", tc.mem*c.SliceMiB, tc.threads)
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

	// Hard limit: once a container has started (kubelet, which the test
	// stands in for, writes its ID into the pod's status, and the runtime
	// has made its cgroup), the next reconcile puts its share on its
	// cgroup's dmem.max. The in-process kubelet starts no container, so the
	// test writes the status and the cgroup.
	t.Log("section HardLimit")
	maxFile := cg.start(t, e, bound["v3-large"], "c0ffee")
	e.poll("hard memory limit on the started container's cgroup", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		b, err := os.ReadFile(maxFile)
		if err != nil {
			return false, err
		}
		want := fmt.Sprintf("%s %d\n", cg.regions[gpuOf["v3-large"]], 10*c.SliceMiB<<20)
		if string(b) != want {
			return false, fmt.Errorf("%s = %q, want %q", maxFile, b, want)
		}
		return true, nil
	})

	// Release: deleting a pod deletes its namespace, the other one stays.
	t.Log("section Release")
	e.deletePods("v3-small")
	kl.forget(bound["v3-small"])
	// The fake removes the directory before its delete command returns, and
	// the manager forgets the namespace when it has returned: wait for both.
	e.poll("namespace of the deleted pod deleted", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		if got := namespaceLimits(t, nsDir["v3-small"]); got != "" {
			return false, fmt.Errorf("namespace %s still there: %q", nsDir["v3-small"], got)
		}
		if got := m.Namespaces(gpuOf["v3-large"]); len(got) != 1 || !strings.Contains(nsDir["v3-large"], got[0]) {
			return false, fmt.Errorf("manager's namespaces %v, want only the live pod's", got)
		}
		return true, nil
	})
	if namespaceLimits(t, nsDir["v3-large"]) == "" {
		t.Errorf("namespace %s of the live pod was deleted", nsDir["v3-large"])
	}
}
