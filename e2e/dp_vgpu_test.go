package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/kube"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// The vGPU node of TestVGPU: a Tesla T4 sized as two GRID T4-8Q vfio-mdev
// instances, and a second GPU on vfio-pci for passthrough.
const (
	vgpuMdevGPU  = "0000:41:00.0"
	vgpuPTGPU    = "0000:c1:00.0"
	vgpuPTGroup  = 7
	vgpuT4Desc8Q = "num_heads=4, frl_config=60, framebuffer=8192M, max_resolution=5120x2880, max_instance=2"
	vgpuT4Desc4Q = "num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=5120x2880, max_instance=4"
	// The admin's RuntimeClass mapping (the extender's
	// --runtime-class-isolation).
	rcVGPU        = "kata-vgpu"
	rcPassthrough = "kata-gpu"
)

// newVGPUSysfs lays out the vGPU node's sysfs.
func newVGPUSysfs(t *testing.T) *sysfs.Fake {
	t.Helper()
	f, err := sysfs.NewFake(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		f.AddDevice(sysfs.DeviceSpec{BDF: vgpuMdevGPU, Driver: "nvidia", NUMANode: 0}),
		f.AddMdevType(vgpuMdevGPU, sysfs.MdevTypeSpec{ID: "nvidia-222", Name: "GRID T4-4Q", Description: vgpuT4Desc4Q, Max: 4}),
		f.AddMdevType(vgpuMdevGPU, sysfs.MdevTypeSpec{ID: "nvidia-223", Name: "GRID T4-8Q", Description: vgpuT4Desc8Q, Max: 2}),
		f.AddDevice(sysfs.DeviceSpec{BDF: vgpuPTGPU, Device: "0x2236", Driver: vgpu.VFIODriver, IOMMUGroup: vgpuPTGroup, NUMANode: 1}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return f
}

// TestVGPU runs a vGPU node end to end: the device plugin in process over a
// fake sysfs with kubelet's own device manager, kube-scheduler and the
// extender with a RuntimeClass mapping. It checks that
//   - the plugin creates the sized mdevs and publishes the node's GPUs as
//     vgpu (type, instance size and count) and passthrough;
//   - a pod of a vgpu RuntimeClass is placed on the vGPU GPU and gets the
//     vfio group of an mdev of that GPU, KubeVirt's variable naming it, and
//     the instance's CDI device; a second one gets the other instance;
//   - instances are charged whole: a third 3 GiB VM pod stays pending
//     although the GPU's memory is far from requested;
//   - a passthrough pod gets the whole vfio-pci GPU;
//   - a runc pod is refused on the node, with the reason.
//
// It uses /var/lib/kubelet/device-plugins, like TestDevicePlugin.
func TestVGPU(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{ExtenderArgs: []string{
		fmt.Sprintf("--runtime-class-isolation=%s=vgpu,%s=passthrough", rcVGPU, rcPassthrough)}})
	e := newEnv(t, c)
	for _, rc := range []string{rcVGPU, rcPassthrough} {
		if _, err := c.Client.NodeV1().RuntimeClasses().Create(e.ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: rc}, Handler: "kata"}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create RuntimeClass %s: %v", rc, err)
		}
		t.Cleanup(func() {
			_ = c.Client.NodeV1().RuntimeClasses().Delete(context.Background(), rc, metav1.DeleteOptions{})
		})
	}

	node := e.group + "-vgpu"
	fs := newVGPUSysfs(t)
	sizingYAML, err := os.ReadFile(filepath.Join("testdata", "vgpu-sizing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sizing, err := vgpu.DecodeNodeConfig(sizingYAML)
	if err != nil {
		t.Fatal(err)
	}
	cdiDir := t.TempDir()
	prSock := filepath.Join(t.TempDir(), "pod-resources.sock")
	kl := startDPKubelet(t, prSock)
	// The plugin publishes the inventory itself; the node starts without.
	if _, err := c.AddGPUNode(e.ctx, harness.GPUNode{Name: node, Labels: map[string]string{groupLabel: e.group}}); err != nil {
		t.Fatal(err)
	}
	// Start holds back on GPUs where pod-resources lists devices.
	pr, err := kube.NewPodResourcesClient(prSock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pr.Close() })
	startVGPU := func() *dpPlugin {
		t.Helper()
		iso, err := vgpu.NewIsolator(vgpu.IsolatorConfig{FS: fs, Config: sizing, ResourceName: api.ResourceGPUMem, CDIDir: cdiDir,
			Clock: clock.RealClock{}, RescanInterval: 200 * time.Millisecond,
			HeldGPUs: func(ctx context.Context) (map[string]bool, error) { return deviceplugin.HeldGPUs(ctx, pr) }})
		if err != nil {
			t.Fatal(err)
		}
		return startDPOn(t, c, node, prSock, &vgpu.Discoverer{FS: fs}, iso, iso.Stop)
	}
	dp := startVGPU()

	// The plugin sized the T4: two GRID T4-8Q mdevs.
	var mdevs map[string]string // mdev UUID -> its IOMMU group
	e.poll("the sized mdevs", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		n, err := vgpu.Discover(ctx, fs)
		if err != nil {
			return false, err
		}
		g, ok := n.GPU(vgpuMdevGPU)
		if !ok {
			return false, fmt.Errorf("GPU %s not discovered", vgpuMdevGPU)
		}
		mdevs = map[string]string{}
		for _, m := range g.Mdevs {
			if m.Type != "nvidia-223" {
				return false, fmt.Errorf("mdev %s of type %q", m.UUID, m.Type)
			}
			mdevs[m.UUID] = m.IOMMUGroup
		}
		return len(mdevs) == 2, fmt.Errorf("%d mdevs", len(mdevs))
	})

	// The inventory: the T4 as vgpu, the other GPU as passthrough.
	var inv *api.Inventory
	e.poll("published vGPU inventory", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		inv, err = nodeInventory(ctx, c, node)
		return err == nil && len(inv.GPUs) == 2, err
	})
	e.inv[node] = inv
	// What kubelet reports from the plugin's devices, once it has them all.
	kubeletRes := corev1.ResourceList{}
	e.poll("kubelet's allocatable equals the inventory", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		for _, rn := range []corev1.ResourceName{api.ResourceGPUMem, api.ResourceGPUCore, api.ResourceGPUCount} {
			kubeletRes[rn] = *resource.NewQuantity(kl.allocatable(string(rn)), resource.DecimalSI)
		}
		if diff := cmp.Diff(harness.GPUResources(inv), kubeletRes); diff != "" {
			return false, fmt.Errorf("(-inventory +kubelet):\n%s", diff)
		}
		return true, nil
	})
	if err := c.SetNodeResources(e.ctx, node, kubeletRes); err != nil {
		t.Fatal(err)
	}
	type gpuSummary struct {
		Isolation           api.IsolationMode
		VGPUType            string
		InstanceMiB         int64
		Slices, Slots       int64
		Enforcement         api.Enforcement
		Healthy             bool
		PCIBusID            string
		CoreUnits, NUMANode int64
	}
	var got []gpuSummary
	uuidOf := map[string]string{} // PCI address -> inventory UUID
	for _, g := range inv.GPUs {
		got = append(got, gpuSummary{g.Isolation, g.VGPUType, g.InstanceMiB, g.Slices, g.Slots, g.Enforces(), g.Healthy, g.PCIBusID, g.CoreUnits, int64(g.NUMANode)})
		uuidOf[strings.ToLower(g.PCIBusID)] = g.UUID
	}
	slicesPer := 8192 / c.SliceMiB
	want := []gpuSummary{
		{api.IsolationVGPU, "GRID T4-8Q", 8192, 2 * slicesPer, 2, api.EnforcementBinding, true, vgpuMdevGPU, 100, 0},
		{api.IsolationPassthrough, "", 16384, 16384 / c.SliceMiB, 1, api.EnforcementBinding, true, vgpuPTGPU, 100, 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("inventory (-want +got):\n%s", diff)
	}
	mdevGPU, ptGPU := uuidOf[vgpuMdevGPU], uuidOf[vgpuPTGPU]

	vmPod := func(name, rc string, mem int64) *corev1.Pod {
		p := e.one(name, mem, 0, 0)
		p.Spec.RuntimeClassName = &rc
		return p
	}
	envName := vgpu.EnvVarName(vgpu.EnvPrefixMdev, api.ResourceGPUMem)
	pciEnvName := vgpu.EnvVarName(vgpu.EnvPrefixPCI, api.ResourceGPUMem)

	// admitVM admits a bound VM pod through the device manager and returns
	// what its container got: the vfio group devices, the KubeVirt
	// variables and the CDI devices.
	type vmGot struct {
		groups []string
		envs   map[string]string
		cdi    []string
	}
	admitVM := func(p *corev1.Pod) vmGot {
		t.Helper()
		opts := kl.admitRun(e.ctx, t, p)
		var g vmGot
		g.envs = map[string]string{}
		hasContainer := false
		for _, d := range opts.Devices {
			if d.PathOnHost == vgpu.VFIOContainerDevice {
				hasContainer = true
				continue
			}
			grp, ok := strings.CutPrefix(d.PathOnHost, "/dev/vfio/")
			if !ok || d.PathInContainer != d.PathOnHost {
				t.Errorf("%s: unexpected device %+v", p.Name, d)
				continue
			}
			g.groups = append(g.groups, grp)
		}
		if !hasContainer {
			t.Errorf("%s: no %s in %+v", p.Name, vgpu.VFIOContainerDevice, opts.Devices)
		}
		for _, ev := range opts.Envs {
			if ev.Name == envName || ev.Name == pciEnvName {
				g.envs[ev.Name] = ev.Value
			}
		}
		for _, d := range opts.CDIDevices {
			g.cdi = append(g.cdi, d.Name)
		}
		return g
	}

	// VMPods: two 3 GiB VM pods share the T4 by its two instances.
	t.Log("section VMPods")
	e.create([]*corev1.Pod{vmPod("vm-a", rcVGPU, 3), vmPod("vm-b", rcVGPU, 3)}, 2)
	bound := e.waitBound(time.Minute, "vm-a", "vm-b")
	e.invariant(e.ctx, nil)
	held := map[string]string{} // mdev UUID -> pod
	for _, name := range []string{"vm-a", "vm-b"} {
		p := bound[name]
		if gpus := containerGPUs(mustPlacement(t, p).Containers, "main", false); !slices.Equal(gpus, []string{mdevGPU}) {
			t.Fatalf("%s placed on %v, want the vGPU GPU %s", name, gpus, mdevGPU)
		}
		g := admitVM(p)
		u := g.envs[envName]
		grp, ok := mdevs[u]
		switch {
		case !ok:
			t.Fatalf("%s: %s=%q is not an mdev of the T4 (%v)", name, envName, u, mdevs)
		case held[u] != "":
			t.Fatalf("%s got mdev %s, which %s holds", name, u, held[u])
		case !slices.Equal(g.groups, []string{grp}):
			t.Errorf("%s: vfio groups %v, want its mdev's group %s", name, g.groups, grp)
		case len(g.cdi) != 1 || !strings.Contains(g.cdi[0], "="):
			t.Errorf("%s: CDI devices %v, want the instance's one", name, g.cdi)
		}
		held[u] = name
		t.Logf("%s: mdev %s, group %s, CDI %v", name, u, grp, g.cdi)
	}

	// WholeInstances: a third 3 GiB VM pod does not fit, though only 6 of
	// the T4's 16 GiB are requested.
	t.Log("section WholeInstances")
	e.create([]*corev1.Pod{vmPod("vm-c", rcVGPU, 3)}, 1)
	e.waitPending("vm-c", nil, time.Minute, "a whole instance")

	// Passthrough: a pod of the passthrough class gets the whole GPU.
	t.Log("section Passthrough")
	e.create([]*corev1.Pod{vmPod("pt", rcPassthrough, 1)}, 1)
	p := e.waitBound(time.Minute, "pt")["pt"]
	if gpus := containerGPUs(mustPlacement(t, p).Containers, "main", false); !slices.Equal(gpus, []string{ptGPU}) {
		t.Fatalf("passthrough pod placed on %v, want %s", gpus, ptGPU)
	}
	g := admitVM(p)
	if diff := cmp.Diff(map[string]string{pciEnvName: vgpuPTGPU}, g.envs); diff != "" {
		t.Errorf("passthrough KubeVirt variables (-want +got):\n%s", diff)
	}
	if !slices.Equal(g.groups, []string{fmt.Sprint(vgpuPTGroup)}) {
		t.Errorf("passthrough vfio groups %v, want %d", g.groups, vgpuPTGroup)
	}

	// RuncRefused: a pod without a VM runtime class is refused, with the
	// reason, and so is a VM pod of a mode the node has no free GPU of.
	t.Log("section RuncRefused")
	e.create([]*corev1.Pod{e.one("runc", 1, 0, 0)}, 1)
	e.waitPending("runc", nil, time.Minute, "VM sandboxes")
	e.invariant(e.ctx, nil)

	// PluginRestart: vm-a ends, the plugin restarts (its reconcile runs
	// again over the same sysfs), and the pending vm-c takes vm-a's
	// instance, never vm-b's, which stays where it was.
	t.Log("section PluginRestart")
	var freed, kept string
	for u, name := range held {
		if name == "vm-a" {
			freed = u
		} else {
			kept = u
		}
	}
	e.deletePods("vm-a")
	kl.forget(bound["vm-a"])
	dp.stop()
	startVGPU() // stopped at the test's end (t.Cleanup)
	p = e.waitBound(time.Minute, "vm-c")["vm-c"]
	e.invariant(e.ctx, nil)
	if u := admitVM(p).envs[envName]; u != freed {
		t.Errorf("vm-c got mdev %q, want vm-a's former %s (vm-b holds %s)", u, freed, kept)
	}
	n, err := vgpu.Discover(e.ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	if g, ok := n.GPU(vgpuMdevGPU); ok {
		for _, m := range g.Mdevs {
			after = append(after, m.UUID)
		}
	}
	if want := slices.Sorted(maps.Keys(mdevs)); !slices.Equal(after, want) {
		t.Errorf("mdevs after the restart %v, want the same %v", after, want)
	}

	// RemovedBehindBack: an mdev removed behind the plugin's back marks
	// its GPU unhealthy in the inventory, with a reason.
	t.Log("section RemovedBehindBack")
	if err := fs.WriteFile("bus/mdev/devices/"+kept+"/remove", []byte("1")); err != nil {
		t.Fatal(err)
	}
	e.poll("GPU unhealthy after its mdev vanished", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		inv, err := nodeInventory(ctx, c, node)
		if err != nil {
			return false, err
		}
		for _, g := range inv.GPUs {
			if g.UUID == mdevGPU {
				if g.Healthy || g.Reason == "" {
					return false, fmt.Errorf("GPU %s healthy=%v reason %q", g.UUID, g.Healthy, g.Reason)
				}
				t.Logf("GPU %s unhealthy: %s", g.UUID, g.Reason)
				return true, nil
			}
		}
		return false, fmt.Errorf("GPU %s not in the inventory", mdevGPU)
	})
	e.check(e.ctx, mustList(t, e))
}

// mustPlacement parses a bound pod's placement.
func mustPlacement(t *testing.T, p *corev1.Pod) *api.Placement {
	t.Helper()
	pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
	if err != nil {
		t.Fatalf("pod %s placement: %v", p.Name, err)
	}
	return pl
}

// mustList lists the env's pods.
func mustList(t *testing.T, e *env) []corev1.Pod {
	t.Helper()
	pods, err := e.list(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}
