package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// mpsDefaultThreads is the thread percentage of a container without
// gpu-core on the MPS node (mps.Config.DefaultActiveThreadPercentage).
const mpsDefaultThreads = 40

// buildFakeMPSControl builds the mps package's fake nvidia-cuda-mps-control
// (deviceplugin/mps/testdata/fakectl) and returns its path.
func buildFakeMPSControl(t *testing.T, repoRoot string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), mps.DefaultControlBinary)
	cmd := exec.Command("go", "build", "-o", bin, "./deviceplugin/mps/testdata/fakectl")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the fake MPS control binary: %v\n%s", err, out)
	}
	return bin
}

// noShmControl runs the fake control binary through the production
// ExecControl, but without the private mount namespace that gives a daemon
// its own /dev/shm: the fake daemon does not outlive its start command, and
// the test must not depend on unshare and mount rights. The manager still
// creates each daemon's shm directory and hands it to containers.
type noShmControl struct{ *mps.ExecControl }

func (c noShmControl) StartDaemon(ctx context.Context, spec mps.DaemonSpec) error {
	spec.ShmDir = ""
	return c.ExecControl.StartDaemon(ctx, spec)
}

// recordedModes is a compute-mode setter that records the GPUs set to
// EXCLUSIVE_PROCESS.
type recordedModes struct {
	mu        sync.Mutex
	exclusive []string
}

func (r *recordedModes) SetExclusiveProcess(uuid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exclusive = append(r.exclusive, uuid)
	return nil
}

func (r *recordedModes) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.exclusive)
}

// newMPSManager returns an MPS manager in gpu scope (a daemon per GPU) that
// runs the fake control binary with its daemons under root.
func newMPSManager(t *testing.T, ctl, root string, modes mps.ComputeModeSetter) *mps.Manager {
	t.Helper()
	m, err := mps.NewManager(mps.Config{Root: root, Scope: mps.ScopeGPU, DefaultActiveThreadPercentage: mpsDefaultThreads},
		noShmControl{mps.NewExecControl(ctl)}, modes)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startMPSDP runs the device plugin like startDP, with MPS isolation.
// startMPSNode adds node to the cluster with the inventory the dpDiscoverer
// GPUs have under m (published by the test, as an operator's node would
// start), and runs kubelet's device manager and the device plugin with m on
// it.
func startMPSNode(t *testing.T, e *env, node string, m *mps.Manager) *dpKubelet {
	t.Helper()
	c := e.c
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
	return kl
}

func startMPSDP(t *testing.T, c *harness.Cluster, node, prSock string, m *mps.Manager) *dpPlugin {
	t.Helper()
	iso := m
	return startDPWith(t, c, node, prSock, iso, iso.Stop)
}

// mpsMount is a container mount, reduced to what the test compares.
type mpsMount struct {
	ContainerPath, HostPath string
	ReadOnly                bool
}

// mpsView is what a container receives from the device manager, reduced to
// the GPU and MPS variables and the mounts.
type mpsView struct {
	Envs   map[string]string
	Mounts []mpsMount
}

var mpsEnvs = []string{
	deviceplugin.EnvNVIDIAVisibleDevices,
	deviceplugin.EnvCUDAVisibleDevices,
	mps.EnvPipeDirectory,
	mps.EnvPinnedDeviceMemLimit,
	mps.EnvActiveThreadPercentage,
}

// TestMPSIsolation runs the device plugin in MPS mode (the mps manager with
// a daemon per GPU, driving the fake nvidia-cuda-mps-control and a fake
// compute-mode setter) behind kubelet's own device manager, and checks that
// pods placed by the real kube-scheduler and gpuslice extender get, through
// Allocate and GetDeviceRunContainerOptions, exactly the MPS limits of their
// share on the GPU the extender chose; that the daemons were started with
// the defaults; and that the node's inventory says one GPU per container.
// Like TestDevicePlugin it uses kubelet's fixed device plugin directory, so
// it needs root and is not parallel.
func TestMPSIsolation(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c)
	node := e.group + "-mps"
	root := t.TempDir()
	modes := &recordedModes{}
	m := newMPSManager(t, buildFakeMPSControl(t, c.RepoRoot()), root, modes)

	// The node starts with the MPS slots (the client cap) but without the
	// limit on GPUs per container: the plugin must publish that.
	kl := startMPSNode(t, e, node, m)

	slicesPerGPU := int64(dpMemMiB) / c.SliceMiB
	mpsSlots := m.Slots(device.GPU{Major: 9})
	e.poll("registration and ListAndWatch", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		got := []int64{kl.allocatable(api.ResourceGPUMem), kl.allocatable(api.ResourceGPUCore), kl.allocatable(api.ResourceGPUCount)}
		want := []int64{dpGPUs * slicesPerGPU, dpGPUs * 100, dpGPUs * mpsSlots}
		if diff := cmp.Diff(want, got); diff != "" {
			return false, fmt.Errorf("allocatable mem/core/count (-want +got):\n%s", diff)
		}
		return true, nil
	})
	e.poll("published MPS inventory", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		got, err := nodeInventory(ctx, c, node)
		if err != nil {
			return false, err
		}
		if got.MaxGPUsPerContainer != 1 || len(got.GPUs) != dpGPUs {
			return false, fmt.Errorf("inventory maxGPUsPerContainer %d over %d GPUs, want 1 over %d", got.MaxGPUsPerContainer, len(got.GPUs), dpGPUs)
		}
		for _, g := range got.GPUs {
			if g.Isolation != api.IsolationMPS || g.Slots != mpsSlots || !g.Healthy {
				return false, fmt.Errorf("GPU %d: isolation %q, %d slots, healthy %v (%s)", g.Index, g.Isolation, g.Slots, g.Healthy, g.Reason)
			}
		}
		return true, nil
	})

	// Daemons: every GPU in EXCLUSIVE_PROCESS, its own daemon that sees only
	// that GPU, started with its own log directory, defaults set through the
	// control pipe (device 0 as the daemon sees it, the whole GPU as the
	// per-client ceiling).
	t.Log("section Daemons")
	{
		var want []string
		for i := range dpGPUs {
			want = append(want, dpUUID(i))
		}
		if diff := cmp.Diff(want, modes.calls()); diff != "" {
			t.Errorf("GPUs set to EXCLUSIVE_PROCESS (-want +got):\n%s", diff)
		}
		for _, u := range want {
			raw, err := os.ReadFile(filepath.Join(root, u, "pipe", "commands.log"))
			if err != nil {
				t.Fatalf("the fake MPS control daemon of %s recorded nothing: %v", u, err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
				if strings.HasPrefix(l, "start ") || strings.HasPrefix(l, "set_default_") {
					got = append(got, l)
				}
			}
			wantCmds := []string{
				"start visible=" + u + " log=" + filepath.Join(root, u, "log"),
				"set_default_active_thread_percentage 100",
				fmt.Sprintf("set_default_device_pinned_mem_limit 0 %dM", dpMemMiB),
			}
			if diff := cmp.Diff(wantCmds, got); diff != "" {
				t.Errorf("daemon of %s: start and defaults commands (-want +got):\n%s", u, diff)
			}
		}
	}

	// Limits: pods with different shares, scheduled one after the other
	// (binpack puts them on one GPU), each get the limits of their own
	// share on the GPU of their placement.
	t.Log("section Limits")
	pods := []struct {
		name      string
		mem, core int64
	}{
		{"mps-small", 4, 30},
		{"mps-large", 10, 60},
		{"mps-no-core", 2, 0},
		// The first GPU is full (16 slices): another GPU, another daemon.
		{"mps-other-gpu", 8, 50},
	}
	gpuOf := map[string]string{}
	limits := map[string]string{}
	for _, tc := range pods {
		e.create([]*corev1.Pod{e.one(tc.name, tc.mem, tc.core, 0)}, 1)
		p := e.waitBound(time.Minute, tc.name)[tc.name]
		pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
		if err != nil {
			t.Fatalf("placement of %s: %v", tc.name, err)
		}
		devs := pl.Containers[0].Devices
		if len(devs) != 1 || devs[0].Slices != tc.mem {
			t.Fatalf("placement of %s: %+v, want %d slices on one GPU", tc.name, devs, tc.mem)
		}
		uuid := devs[0].UUID
		gpuOf[tc.name] = uuid
		got, opts := admitMPS(t, e, kl, p)
		threads := tc.core
		if threads == 0 {
			threads = mpsDefaultThreads
		}
		want := mpsView{
			Envs: map[string]string{
				// The plugin's default cdi strategy: the GPU comes as a
				// CDI device (checked below), the variable is void.
				deviceplugin.EnvNVIDIAVisibleDevices: "void",
				deviceplugin.EnvCUDAVisibleDevices:   uuid,
				mps.EnvPipeDirectory:                 mps.DefaultContainerPipeDir,
				mps.EnvPinnedDeviceMemLimit:          fmt.Sprintf("0=%dM", tc.mem*c.SliceMiB),
				mps.EnvActiveThreadPercentage:        strconv.FormatInt(threads, 10),
			},
			Mounts: []mpsMount{
				{ContainerPath: "/dev/shm", HostPath: filepath.Join(root, uuid, "shm")},
				{ContainerPath: mps.DefaultContainerPipeDir, HostPath: filepath.Join(root, uuid, "pipe")},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pod %s (%d slices, %d core) on %s: container options (-want +got):\n%s", tc.name, tc.mem, tc.core, uuid, diff)
		}
		if gpus, err := visibleGPUs(opts); err != nil || !slices.Equal(gpus, []string{uuid}) {
			t.Errorf("pod %s: visible GPUs %v (%v), want [%s]", tc.name, gpus, err, uuid)
		}
		limits[tc.name] = got.Envs[mps.EnvPinnedDeviceMemLimit] + " " + got.Envs[mps.EnvActiveThreadPercentage] + "%"
		t.Logf("pod %s on %s: %s=%s %s=%s", tc.name, uuid, mps.EnvPinnedDeviceMemLimit, got.Envs[mps.EnvPinnedDeviceMemLimit],
			mps.EnvActiveThreadPercentage, got.Envs[mps.EnvActiveThreadPercentage])
	}
	if gpuOf["mps-other-gpu"] == gpuOf["mps-small"] {
		t.Errorf("a pod that does not fit the first GPU was placed on it: %v", gpuOf)
	}
	if gpuOf["mps-small"] != gpuOf["mps-large"] {
		t.Errorf("pods with different shares were expected on one GPU (binpack): %v", gpuOf)
	} else if limits["mps-small"] == limits["mps-large"] {
		t.Errorf("two pods with different shares on GPU %s got the same limits %q", gpuOf["mps-small"], limits["mps-small"])
	}

	// MultiGPU: a daemon per GPU cannot serve a container that spans GPUs;
	// the inventory says so and the extender does not place one here.
	t.Log("section MultiGPU")
	{
		e.create([]*corev1.Pod{e.one("mps-two-gpus", 2, 0, 2)}, 1)
		e.waitFailedScheduling("mps-two-gpus", time.Minute, "1 per container")
	}
}

// admitMPS admits a bound one-container pod through the device manager and
// returns the MPS variables and the mounts its container gets (mounts by
// container path), and the run options they come from.
func admitMPS(t *testing.T, e *env, kl *dpKubelet, p *corev1.Pod) (mpsView, *devicemanager.DeviceRunContainerOptions) {
	t.Helper()
	opts := kl.admitRun(e.ctx, t, p)
	got := mpsView{Envs: map[string]string{}}
	for _, ev := range opts.Envs {
		if slices.Contains(mpsEnvs, ev.Name) {
			got.Envs[ev.Name] = ev.Value
		}
	}
	for _, mt := range opts.Mounts {
		got.Mounts = append(got.Mounts, mpsMount{ContainerPath: mt.ContainerPath, HostPath: mt.HostPath, ReadOnly: mt.ReadOnly})
	}
	slices.SortFunc(got.Mounts, func(a, b mpsMount) int { return strings.Compare(a.ContainerPath, b.ContainerPath) })
	return got, opts
}
