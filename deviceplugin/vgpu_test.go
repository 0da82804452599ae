package deviceplugin

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

// The vGPU test node: a T4 with vfio-mdev vGPU (NVML sees it as GPU 0), an
// L40 with SR-IOV vGPU (GPU 1) and a GPU on vfio-pci for passthrough, which
// NVML does not see.
const (
	vgMdevGPU  = "0000:41:00.0"
	vgSRIOVGPU = "0000:81:00.0"
	vgPTGPU    = "0000:c1:00.0"
	vgPTID     = "PCI-0000:c1:00.0"
	vgPTGroup  = "7"
	t4Desc     = "num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=5120x2880, max_instance=4"
)

// fakeNVML is the GPUs NVML sees.
type fakeNVML []device.GPU

func (f fakeNVML) Discover(context.Context) ([]device.GPU, error) { return f, nil }

func vgpuFake(t *testing.T) *sysfs.Fake {
	t.Helper()
	f, err := sysfs.NewFake(t.TempDir())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(err)
	must(f.AddDevice(sysfs.DeviceSpec{BDF: vgMdevGPU, Driver: "nvidia", NUMANode: 0}))
	must(f.AddMdevType(vgMdevGPU, sysfs.MdevTypeSpec{ID: "nvidia-222", Name: "GRID T4-4Q", Description: t4Desc, Max: 4}))
	must(f.AddDevice(sysfs.DeviceSpec{BDF: vgSRIOVGPU, Device: "0x26b5", Driver: "nvidia", NUMANode: 1}))
	_, err = f.EnableSRIOV(vgSRIOVGPU, 4, []sysfs.VGPUTypeSpec{{ID: 557, Name: "NVIDIA L40-4Q", Max: 4}, {ID: 560, Name: "NVIDIA L40-12Q", Max: 2}})
	must(err)
	must(f.AddDevice(sysfs.DeviceSpec{BDF: vgPTGPU, Device: "0x2236", Driver: vgpu.VFIODriver, IOMMUGroup: 7, NUMANode: 1}))
	return f
}

func vgpuConfig(t4, l40 int) vgpu.NodeConfig {
	return vgpu.NodeConfig{GPUs: []vgpu.GPUConfig{
		{Select: vgpu.Selector{BDF: vgMdevGPU}, Mode: vgpu.ModeVGPU, Type: "GRID T4-4Q", Instances: t4},
		{Select: vgpu.Selector{BDF: vgSRIOVGPU}, Mode: vgpu.ModeVGPU, Type: "NVIDIA L40-4Q", Instances: l40},
		{Select: vgpu.Selector{BDF: vgPTGPU}, Mode: vgpu.ModePassthrough, MemoryMiB: 24576},
	}}
}

// vgpuNode is a plugin of a vGPU node set up on a fake sysfs.
type vgpuNode struct {
	fs    *sysfs.Fake
	clk   *testingclock.FakeClock
	iso   *vgpu.Isolator
	p     *Plugin
	pods  *fakePods
	pr    *fakePR
	nodes *fakeNodes
	cfg   Config
}

func newVGPUNode(t *testing.T, f *sysfs.Fake, nc vgpu.NodeConfig, held map[string]bool) *vgpuNode {
	t.Helper()
	n := &vgpuNode{fs: f, clk: testingclock.NewFakeClock(t0), pods: &fakePods{}, pr: newFakePR(), nodes: &fakeNodes{ann: map[string]string{}}, cfg: testConfig()}
	n.cfg.PluginDir = t.TempDir()
	nvml := fakeNVML{
		{Index: 0, UUID: gpuUUID(0), Model: "Tesla T4", MemoryMiB: 15360, PCIBusID: vgMdevGPU, Major: 7, MinorCC: 5},
		{Index: 1, UUID: gpuUUID(1), Model: "NVIDIA L40", MemoryMiB: 46068, PCIBusID: vgSRIOVGPU, Major: 8, MinorCC: 9},
	}
	uuids := 0
	iso, err := vgpu.NewIsolator(vgpu.IsolatorConfig{
		FS: f, Config: nc, ResourceName: api.ResourceGPUMem, CDIDir: t.TempDir(), Clock: n.clk, RescanInterval: time.Minute,
		HeldGPUs: func(context.Context) (map[string]bool, error) { return held, nil },
		NewUUID: func() (string, error) {
			uuids++
			return "00000000-0000-4000-8000-00000000000" + string(rune('0'+uuids)), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.iso = iso
	n.p, err = New(n.cfg, Deps{Discoverer: &vgpu.Discoverer{FS: f, NVML: nvml}, Isolator: iso, Pods: n.pods, PodResources: n.pr,
		Patcher: n.pods, Nodes: n.nodes, Clock: n.clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.p.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iso.Stop)
	return n
}

func unitIDs(uuid string, from, to int64) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, DeviceID(uuid, KindMem, n))
	}
	return out
}

func TestVGPUInventory(t *testing.T) {
	n := newVGPUNode(t, vgpuFake(t), vgpuConfig(2, 3), map[string]bool{})
	inv := n.p.State().Inventory(n.cfg.SliceMiB, n.iso.Mode(), nil)
	if err := inv.Validate(); err != nil {
		t.Fatalf("inventory does not validate: %v", err)
	}
	// The fake puts every device under one host bridge.
	hb := func(peers ...int) []api.Link {
		var out []api.Link
		for _, p := range peers {
			out = append(out, api.Link{Peer: p, Type: api.LinkHostBridge})
		}
		return out
	}
	want := []api.GPU{
		{Index: 0, UUID: gpuUUID(0), Model: "Tesla T4", MemoryMiB: 15360, Slices: 8, Slots: 2, CoreUnits: 100, NUMANode: 0, PCIBusID: vgMdevGPU,
			Healthy: true, Isolation: api.IsolationVGPU, VGPUType: "GRID T4-4Q", InstanceMiB: 4096, Enforcement: api.EnforcementBinding, Links: hb(1, 2)},
		{Index: 1, UUID: gpuUUID(1), Model: "NVIDIA L40", MemoryMiB: 46068, Slices: 12, Slots: 3, CoreUnits: 100, NUMANode: 1, PCIBusID: vgSRIOVGPU,
			Healthy: true, Isolation: api.IsolationVGPU, VGPUType: "NVIDIA L40-4Q", InstanceMiB: 4096, Enforcement: api.EnforcementBinding, Links: hb(0, 2)},
		{Index: 2, UUID: vgPTID, Model: "NVIDIA PCI device 0x2236", MemoryMiB: 24576, Slices: 24, Slots: 1, CoreUnits: 100, NUMANode: 1, PCIBusID: vgPTGPU,
			Healthy: true, Isolation: api.IsolationPassthrough, InstanceMiB: 24576, Enforcement: api.EnforcementBinding, Links: hb(0, 1)},
	}
	if diff := cmp.Diff(want, inv.GPUs); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	if p := n.iso.Problems(); len(p) != 0 {
		t.Errorf("problems %v", p)
	}
}

// TestVGPUAllocate: the Allocate answer of each flavour; two containers on
// one GPU get different instances; IDs across instances or in a held one
// are refused; a restarted broker keeps the assignments.
func TestVGPUAllocate(t *testing.T) {
	ctx := context.Background()
	n := newVGPUNode(t, vgpuFake(t), vgpuConfig(2, 2), map[string]bool{})
	st := n.p.State()
	b := n.p.Broker()
	sim := newSim(t, b, n.pr, st)
	for i, name := range []string{"a", "b"} {
		n.pods.add(makePod(podSpec{name: name, assigned: t0.Add(time.Duration(i) * time.Second), containers: []ctr{{name: "c", mem: 3, gpus: []int{0}}}}))
		if err := sim.admit(n.pods.get("default", name), nil); err != nil {
			t.Fatalf("admit %s: %v", name, err)
		}
	}
	mdevs := n.iso.Devices(gpuUUID(0))
	instanceOf := func(pod string) int64 {
		ids := n.pr.devs["default/"+pod]["c"][api.ResourceGPUMem]
		j := unitOf(ids[0]) / 4
		for _, id := range ids {
			if unitOf(id)/4 != j {
				t.Errorf("pod %s: IDs %v span instances", pod, ids)
			}
		}
		return j
	}
	if ja, jb := instanceOf("a"), instanceOf("b"); ja == jb {
		t.Errorf("pods a and b share instance %d", ja)
	}
	envVar := vgpu.EnvVarName(vgpu.EnvPrefixMdev, api.ResourceGPUMem)
	if a, b := sim.envs("a", "c")[envVar], sim.envs("b", "c")[envVar]; a == b || a == "" {
		t.Errorf("mdevs a %q, b %q: want two different ones", a, b)
	}

	// The whole answer, per flavour.
	vfs := n.iso.Devices(gpuUUID(1))
	tests := []struct {
		name string
		gpu  int
		uuid string
		mem  int64
		ids  []string
		want *pluginapi.ContainerAllocateResponse
	}{
		{"sr-iov VF", 1, gpuUUID(1), 4, unitIDs(gpuUUID(1), 4, 8), &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{vgpu.EnvVarName(vgpu.EnvPrefixPCI, api.ResourceGPUMem): vfs[1].ID},
			Devices: []*pluginapi.DeviceSpec{
				{ContainerPath: "/dev/vfio/vfio", HostPath: "/dev/vfio/vfio", Permissions: "mrw"},
				{ContainerPath: "/dev/vfio/" + vfs[1].IOMMUGroup, HostPath: "/dev/vfio/" + vfs[1].IOMMUGroup, Permissions: "mrw"},
			},
			CdiDevices: []*pluginapi.CDIDevice{{Name: "gpuslice.io/vgpu=" + vfs[1].ID}},
		}},
		{"passthrough", 2, vgPTID, 24, unitIDs(vgPTID, 0, 24), &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{vgpu.EnvVarName(vgpu.EnvPrefixPCI, api.ResourceGPUMem): vgPTGPU},
			Devices: []*pluginapi.DeviceSpec{
				{ContainerPath: "/dev/vfio/vfio", HostPath: "/dev/vfio/vfio", Permissions: "mrw"},
				{ContainerPath: "/dev/vfio/" + vgPTGroup, HostPath: "/dev/vfio/" + vgPTGroup, Permissions: "mrw"},
			},
			CdiDevices: []*pluginapi.CDIDevice{{Name: "gpuslice.io/vgpu=" + vgPTGPU}},
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := makePod(podSpec{name: "flavour" + string(rune('0'+i)), assigned: t0, containers: []ctr{{name: "c", mem: tc.mem, gpus: []int{tc.gpu}}}})
			pod.Annotations[api.AnnotationPlacement] = strings.ReplaceAll(pod.Annotations[api.AnnotationPlacement], gpuUUID(tc.gpu), tc.uuid)
			n.pods.add(pod)
			n.pr.know(pod)
			got, err := b.Allocate(ctx, KindMem, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			n.pr.set("default", pod.Name, "c", api.ResourceGPUMem, tc.ids)
		})
	}
	if len(mdevs) != 2 {
		t.Fatalf("T4 mdevs %v", mdevs)
	}

	// Refusals.
	refused := []struct {
		name string
		mem  int64
		ids  []string
		want string
	}{
		{"span two instances", 4, unitIDs(gpuUUID(1), 2, 6), "span instances 0 and 1"},
		{"held instance", 1, unitIDs(gpuUUID(0), 4*instanceOf("a")+3, 4*instanceOf("a")+4), "is held by container \"c\" of pod default/a"},
		{"no such instance", 1, unitIDs(gpuUUID(1), 8, 9), "has 2 instances, not instance 2"},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			g := 1
			if strings.HasPrefix(tc.ids[0], gpuUUID(0)) {
				g = 0
			}
			pod := makePod(podSpec{name: "refused" + string(rune('0'+i)), assigned: t0, containers: []ctr{{name: "c", mem: tc.mem, gpus: []int{g}}}})
			n.pods.add(pod)
			n.pr.know(pod)
			_, err := b.Allocate(ctx, KindMem, tc.ids)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Allocate: %v, want %q", err, tc.want)
			}
			n.pr.drop("default", pod.Name)
		})
	}

	// A restarted broker sees the same instances held (both T4 instances,
	// from pod-resources alone) and refuses them.
	b2 := NewBroker(&n.cfg, st, n.iso, n.pods, n.pr)
	n.pods.add(makePod(podSpec{name: "late", assigned: t0.Add(time.Minute), containers: []ctr{{name: "c", mem: 1, gpus: []int{0}}}}))
	n.pr.know(n.pods.get("default", "late"))
	for _, j := range []int64{0, 1} {
		if _, err := b2.Allocate(ctx, KindMem, unitIDs(gpuUUID(0), 4*j+3, 4*j+4)); err == nil || !strings.Contains(err.Error(), "is held by") {
			t.Errorf("after a restart, instance %d: %v, want held", j, err)
		}
	}
}

// TestVGPUPreferred: the preferred allocation lies in one free instance.
func TestVGPUPreferred(t *testing.T) {
	ctx := context.Background()
	n := newVGPUNode(t, vgpuFake(t), vgpuConfig(2, 4), map[string]bool{})
	b := n.p.Broker()
	// A pod bypassing nothing holds instance 0 of the L40 with 2 IDs.
	holder := makePod(podSpec{name: "holder", assigned: t0, containers: []ctr{{name: "c", mem: 2, gpus: []int{1}}}})
	n.pods.add(holder)
	n.pr.set("default", "holder", "c", api.ResourceGPUMem, unitIDs(gpuUUID(1), 0, 2))
	p := makePod(podSpec{name: "p", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 3, gpus: []int{1}}}})
	n.pods.add(p)
	n.pr.know(p)
	// kubelet offers the free IDs, in an order that starts in instance 0.
	avail := append(unitIDs(gpuUUID(1), 2, 16), unitIDs(gpuUUID(0), 0, 8)...)
	got, err := b.Preferred(ctx, KindMem, avail, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unitIDs(gpuUUID(1), 4, 7), got); diff != "" {
		t.Errorf("preferred (-want +got):\n%s", diff)
	}
}

// TestVGPUReconcileKeepsHeld: a GPU where pods hold devices keeps every
// instance, even those the config no longer wants.
func TestVGPUReconcileKeepsHeld(t *testing.T) {
	tests := []struct {
		name      string
		held      map[string]bool
		wantMdevs int
	}{
		{"held", map[string]bool{gpuUUID(0): true}, 3},
		{"not held", map[string]bool{}, 1},
		{"pod-resources unknown", nil, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := vgpuFake(t)
			for _, u := range []string{"10000000-0000-4000-8000-000000000000", "20000000-0000-4000-8000-000000000000", "30000000-0000-4000-8000-000000000000"} {
				if err := vgpu.CreateMdev(f, vgMdevGPU, "nvidia-222", u); err != nil {
					t.Fatal(err)
				}
			}
			held := tc.held
			n := newVGPUNodeHeld(t, f, vgpuConfig(1, 1), held)
			node, err := vgpu.Discover(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := node.GPU(vgMdevGPU)
			if len(g.Mdevs) != tc.wantMdevs {
				t.Errorf("%d mdevs left, want %d", len(g.Mdevs), tc.wantMdevs)
			}
			// Held instances beyond the count are still served (and
			// removed by a later start once released).
			if got := len(n.iso.Devices(gpuUUID(0))); got != tc.wantMdevs {
				t.Errorf("%d instances served, want %d", got, tc.wantMdevs)
			}
			if ok, why := n.iso.Healthy(gpuUUID(0)); !ok {
				t.Errorf("unhealthy: %s", why)
			}
		})
	}
}

// newVGPUNodeHeld is newVGPUNode with HeldGPUs failing when held is nil.
func newVGPUNodeHeld(t *testing.T, f *sysfs.Fake, nc vgpu.NodeConfig, held map[string]bool) *vgpuNode {
	if held != nil {
		return newVGPUNode(t, f, nc, held)
	}
	n := &vgpuNode{fs: f, clk: testingclock.NewFakeClock(t0)}
	iso, err := vgpu.NewIsolator(vgpu.IsolatorConfig{FS: f, Config: nc, ResourceName: api.ResourceGPUMem, Clock: n.clk})
	if err != nil {
		t.Fatal(err)
	}
	n.iso = iso
	gpus, err := (&vgpu.Discoverer{FS: f, NVML: fakeNVML{{UUID: gpuUUID(0), PCIBusID: vgMdevGPU, MemoryMiB: 15360}}}).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := iso.Start(context.Background(), gpus); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iso.Stop)
	return n
}

// TestVGPUHealth: a parent GPU that vanishes, or an mdev removed behind the
// plugin's back, makes the GPU unhealthy once, with a reason, at the next
// rescan of the injected clock.
func TestVGPUHealth(t *testing.T) {
	tests := []struct {
		name   string
		gpu    string
		break_ func(t *testing.T, n *vgpuNode)
		reason string
	}{
		{"parent GPU vanishes", gpuUUID(1), func(t *testing.T, n *vgpuNode) {
			if err := n.fs.RemoveDevice(vgSRIOVGPU); err != nil {
				t.Fatal(err)
			}
		}, "parent GPU " + vgSRIOVGPU + " disappeared"},
		{"mdev removed behind the plugin's back", gpuUUID(0), func(t *testing.T, n *vgpuNode) {
			if err := vgpu.RemoveMdev(n.fs, n.iso.Devices(gpuUUID(0))[1].ID); err != nil {
				t.Fatal(err)
			}
		}, "was removed behind the plugin's back"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newVGPUNode(t, vgpuFake(t), vgpuConfig(2, 2), map[string]bool{})
			tc.break_(t, n)
			deadline := time.After(20 * time.Second)
			var e device.HealthEvent
			for got := false; !got; {
				n.clk.Step(time.Minute)
				select {
				case e = <-n.iso.Events():
					got = true
				case <-deadline:
					t.Fatal("no health event")
				case <-time.After(10 * time.Millisecond):
				}
			}
			if e.UUID != tc.gpu || e.Healthy || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("event %+v, want GPU %s unhealthy: %q", e, tc.gpu, tc.reason)
			}
			if ok, why := n.iso.Healthy(tc.gpu); ok || !strings.Contains(why, tc.reason) {
				t.Errorf("Healthy = %v, %q", ok, why)
			}
			// Reported once: another rescan changes nothing.
			if err := n.iso.Rescan(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case e := <-n.iso.Events():
				t.Errorf("second event %+v", e)
			default:
			}
		})
	}
}

// TestVGPUMalformedSysfs: a GPU whose sysfs does not parse is left as it is
// and not served, and the problem names the file.
func TestVGPUMalformedSysfs(t *testing.T) {
	f := vgpuFake(t)
	if err := vgpu.CreateMdev(f, vgMdevGPU, "nvidia-222", "10000000-0000-4000-8000-000000000000"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetFile("bus/pci/devices/"+vgMdevGPU+"/mdev_supported_types/nvidia-222/description", "framebuffer=lots"); err != nil {
		t.Fatal(err)
	}
	before := len(f.Writes())
	n := newVGPUNode(t, f, vgpuConfig(3, 1), map[string]bool{})
	if w := f.Writes()[before:]; slices.ContainsFunc(w, func(w sysfs.Write) bool {
		return strings.Contains(w.Path, vgMdevGPU) || strings.Contains(w.Path, "bus/mdev")
	}) {
		t.Errorf("writes on the malformed GPU: %v", w)
	}
	problems := strings.Join(n.iso.Problems(), "\n")
	if !strings.Contains(problems, "nvidia-222/description") || !strings.Contains(problems, vgMdevGPU) {
		t.Errorf("problems do not name the file:\n%s", problems)
	}
	// The inventory says so too, for the admin and kubectl gpuslice.
	if err := n.p.PublishInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(n.nodes.inventory().Problems, "\n"); got != problems {
		t.Errorf("inventory problems:\n%s\nwant the isolator's:\n%s", got, problems)
	}
	if _, ok := n.p.State().GPU(gpuUUID(0)); ok {
		t.Error("the malformed GPU is served")
	}
	if _, ok := n.p.State().GPU(gpuUUID(1)); !ok {
		t.Error("the L40 is not served")
	}
}
