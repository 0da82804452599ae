package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/kube"
	dpmetrics "github.com/gpuslice/gpuslice/deviceplugin/metrics"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

const (
	dpGPUs   = 4
	dpMemMiB = 16 * 1024
	dpSlots  = 8
)

func dpUUID(i int) string { return fmt.Sprintf("GPU-e2e0000%d-0000-4000-8000-00000000000%d", i, i) }

type dpDiscoverer struct{}

// MemoryInfo is NVML's memory use of a fake GPU: a quarter used.
func (dpDiscoverer) MemoryInfo(string) (used, total uint64, err error) {
	return dpMemMiB << 18, dpMemMiB << 20, nil
}

func (dpDiscoverer) Discover(context.Context) ([]device.GPU, error) {
	var out []device.GPU
	for i := 0; i < dpGPUs; i++ {
		g := device.GPU{Index: i, UUID: dpUUID(i), Model: "E2E-GPU-16GB", MemoryMiB: dpMemMiB,
			PCIBusID: fmt.Sprintf("0000:%02x:00.0", 0x10+i), NUMANode: i / 2, Major: 9}
		for j := 0; j < dpGPUs; j++ {
			if j != i {
				g.Links = append(g.Links, api.Link{Peer: j, Type: api.LinkNVLink, NVLinks: 4})
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// dpHealth is a health source the test drives.
type dpHealth struct{ ch chan device.HealthEvent }

func (h *dpHealth) Run(ctx context.Context) error     { <-ctx.Done(); return nil }
func (h *dpHealth) Events() <-chan device.HealthEvent { return h.ch }

// dpPlugin runs the device plugin with production adapters (pod informer,
// API writes, kubelet's pod-resources client) and fake GPUs.
type dpPlugin struct {
	cancel context.CancelFunc
	done   chan error
	health *dpHealth
	// metrics are the plugin's; scrape serves them over HTTP.
	metrics *dpmetrics.Metrics
}

func startDP(t *testing.T, c *harness.Cluster, node, prSock string) *dpPlugin {
	t.Helper()
	return startDPWith(t, c, node, prSock, deviceplugin.NoIsolation{SlotsPerGPU: dpSlots}, nil)
}

// startDPWith runs the device plugin in process for node with the given
// isolator; stopped, when set, runs after the plugin has stopped.
func startDPWith(t *testing.T, c *harness.Cluster, node, prSock string, iso device.Isolator, stopped func()) *dpPlugin {
	t.Helper()
	return startDPOn(t, c, node, prSock, dpDiscoverer{}, iso, stopped)
}

// startDPOn is startDPWith with the GPUs of disc.
func startDPOn(t *testing.T, c *harness.Cluster, node, prSock string, disc deviceplugin.Discoverer, iso device.Isolator, stopped func()) *dpPlugin {
	t.Helper()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background().WithName("device-plugin")))
	cfg := deviceplugin.DefaultConfig()
	cfg.NodeName = node
	cfg.SliceMiB = c.SliceMiB
	cfg.PodResourcesSocket = prSock
	cfg.WatchInterval = 100 * time.Millisecond
	cfg.ReconcileInterval = 200 * time.Millisecond
	pods := kube.NewPodCache(c.DevicePluginClient, node, 0)
	if err := pods.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	pr, err := kube.NewPodResourcesClient(prSock, 10*time.Second)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h := &dpHealth{ch: make(chan device.HealthEvent, 4)}
	client := kube.Client{Kube: c.DevicePluginClient}
	// Events and metrics as the binary wires them (deviceplugin/app).
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: c.DevicePluginClient.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	m := dpmetrics.New()
	p, err := deviceplugin.New(cfg, deviceplugin.Deps{
		Discoverer: disc, NewHealth: func([]string) deviceplugin.HealthSource { return h },
		Isolator: iso, Pods: pods, PodResources: pr,
		Patcher: client, Nodes: client, Clock: clock.RealClock{},
		Metrics: m, Events: broadcaster.NewRecorder(scheme.Scheme, "gpuslice-device-plugin"), Memory: dpDiscoverer{},
	})
	if err != nil {
		cancel()
		broadcaster.Shutdown()
		t.Fatal(err)
	}
	d := &dpPlugin{cancel: cancel, done: make(chan error, 1), health: h, metrics: m}
	go func() {
		defer broadcaster.Shutdown()
		err := p.Run(ctx)
		if stopped != nil {
			stopped()
		}
		pods.Shutdown()
		_ = pr.Close()
		d.done <- err
	}()
	t.Cleanup(d.stop)
	return d
}

func (d *dpPlugin) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	// The plugin ends with its context; how it ended was logged by Run.
	<-d.done //nolint:errcheck // only waiting for the plugin to stop
	d.cancel = nil
}

// dpInventory is the inventory the plugin will publish for the fake GPUs.
func dpInventory(t *testing.T, sliceMiB int64) *api.Inventory {
	t.Helper()
	found, _ := dpDiscoverer{}.Discover(context.Background())
	gpus, err := deviceplugin.BuildGPUs(context.Background(), found, sliceMiB, deviceplugin.NoIsolation{SlotsPerGPU: dpSlots})
	if err != nil {
		t.Fatal(err)
	}
	return deviceplugin.NewState(gpus).Inventory(sliceMiB, api.IsolationNone, nil)
}

// podAllocation reads pod ns/name and its allocation record; an error
// when the record is missing or malformed, or gives a container other GPUs
// than the placement names.
func podAllocation(ctx context.Context, client kubernetes.Interface, ns, name string) (*corev1.Pod, *api.Allocation, error) {
	p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	alloc, err := api.ParseAllocation(p.Annotations[api.AnnotationAllocated])
	if err != nil {
		return nil, nil, err
	}
	pl, err := api.ParsePlacement(p.Annotations[api.AnnotationPlacement])
	if err != nil {
		return nil, nil, err
	}
	for _, ac := range alloc.Containers {
		if !slices.Equal(containerGPUs(pl.Containers, ac.Name, ac.Init), containerGPUs(alloc.Containers, ac.Name, ac.Init)) {
			return nil, nil, fmt.Errorf("placement %+v != allocation %+v", pl.Containers, alloc.Containers)
		}
	}
	return p, alloc, nil
}

// containerGPUs returns the GPU UUIDs of a container in a placement or
// allocation record.
func containerGPUs(cs []api.ContainerPlacement, name string, init bool) []string {
	for _, c := range cs {
		if c.Name == name && c.Init == init {
			var out []string
			for _, d := range c.Devices {
				out = append(out, d.UUID)
			}
			return out
		}
	}
	return nil
}

// TestDevicePlugin drives the device plugin through kubelet's own device
// manager and pod-resources server, with pods placed by the real
// kube-scheduler and gpuslice extender: registration, ListAndWatch,
// GetPreferredAllocation + Allocate + PreStartContainer for single-GPU,
// multi-GPU, multi-container and init-container pods, a kubelet restart, a
// plugin restart and a GPU failing. (A pod that bypasses the extender is
// TestBypass's.)
// It uses /var/lib/kubelet/device-plugins (kubelet's fixed path), so it
// needs root, refuses to run beside a real kubelet and is not parallel.
func TestDevicePlugin(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c)
	node := e.group + "-dp"
	inv := dpInventory(t, c.SliceMiB)
	if _, err := c.AddGPUNode(e.ctx, harness.GPUNode{Name: node, Inventory: inv, Labels: map[string]string{groupLabel: e.group}}); err != nil {
		t.Fatal(err)
	}
	e.inv[node] = inv
	prSock := filepath.Join(t.TempDir(), "pod-resources.sock")
	kl := startDPKubelet(t, prSock)
	dp := startDP(t, c, node, prSock)

	slicesPerGPU := int64(dpMemMiB) / c.SliceMiB
	waitCapacity := func(what string, mem int64) {
		t.Helper()
		e.poll(what, 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
			got := []int64{kl.allocatable(api.ResourceGPUMem), kl.allocatable(api.ResourceGPUCore), kl.allocatable(api.ResourceGPUCount)}
			want := []int64{mem, 100 * mem / slicesPerGPU, dpSlots * mem / slicesPerGPU}
			if !slices.Equal(got, want) {
				return false, fmt.Errorf("allocatable %v, want %v", got, want)
			}
			return true, nil
		})
	}
	waitCapacity("registration and ListAndWatch", dpGPUs*slicesPerGPU)
	e.poll("published inventory", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		got, err := nodeInventory(ctx, c, node)
		return err == nil && len(got.GPUs) == dpGPUs && got.GPUs[0].Links[0].NVLinks == 4, err
	})

	// admitAndCheck schedules pods through kube-scheduler + the extender,
	// admits them in creation order through the device manager and checks
	// that every container's environment names exactly the GPUs of its
	// pod's allocation record, which equals the (possibly rewritten)
	// placement.
	admitAndCheck := func(pods ...*corev1.Pod) {
		t.Helper()
		e.create(pods, 4)
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
		}
		bound := e.waitBound(time.Minute, names...)
		for _, name := range names {
			p := bound[name]
			if err := kl.admit(e.ctx, p); err != nil {
				t.Fatalf("admit %s: %v", name, err)
			}
			envs := map[string][]string{}
			for _, cs := range []struct {
				list []corev1.Container
				init bool
			}{{p.Spec.InitContainers, true}, {p.Spec.Containers, false}} {
				for i := range cs.list {
					opts, err := kl.runOptions(e.ctx, p, &cs.list[i])
					if err != nil {
						t.Fatalf("run options of %s/%s: %v", name, cs.list[i].Name, err)
					}
					gpus, err := visibleGPUs(opts)
					if err != nil {
						t.Fatalf("%s/%s: %v", name, cs.list[i].Name, err)
					}
					if gpus != nil {
						envs[fmt.Sprint(cs.init, cs.list[i].Name)] = gpus
					}
				}
			}
			var alloc *api.Allocation
			e.poll("allocation of "+name, 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
				var err error
				_, alloc, err = podAllocation(ctx, c.Client, e.ns, name)
				return err == nil, err
			})
			for _, ac := range alloc.Containers {
				want := containerGPUs(alloc.Containers, ac.Name, ac.Init)
				if got := envs[fmt.Sprint(ac.Init, ac.Name)]; !slices.Equal(got, want) {
					t.Errorf("pod %s container %s: visible GPUs %v, allocation %v", name, ac.Name, got, want)
				}
			}
			t.Logf("pod %s allocated: %+v", name, alloc.Containers)
		}
	}

	// PlacedPods
	t.Log("section PlacedPods")
	{
		admitAndCheck(
			e.one("single", 4, 0, 0),
			e.one("multi-gpu", 8, 100, 2),
			e.pod("multi-container", ctr{name: "a", mem: 2}, ctr{name: "b", mem: 4, core: 50}),
			e.pod("with-init", ctr{name: "init", init: true, mem: 2}, ctr{name: "main", mem: 2}),
		)
	}

	// KubeletRestart
	t.Log("section KubeletRestart")
	{
		kl.restart()
		waitCapacity("re-registration after a kubelet restart", dpGPUs*slicesPerGPU)
		// The checkpoint still holds earlier allocations.
		p, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, "single", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		opts, err := kl.runOptions(e.ctx, p, &p.Spec.Containers[0])
		if err != nil || len(opts.Envs) == 0 {
			t.Fatalf("run options of an earlier pod after the restart: %+v, %v", opts, err)
		}
		admitAndCheck(e.one("after-kubelet-restart", 4, 0, 0))
	}

	// PluginRestart
	t.Log("section PluginRestart")
	{
		before, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, "multi-gpu", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dp.stop()
		dp = startDP(t, c, node, prSock)
		waitCapacity("re-registration after a plugin restart", dpGPUs*slicesPerGPU)
		admitAndCheck(e.one("after-plugin-restart", 2, 0, 0))
		after, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, "multi-gpu", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if before.Annotations[api.AnnotationAllocated] != after.Annotations[api.AnnotationAllocated] {
			t.Errorf("a plugin restart changed an earlier allocation:\n%s\n%s", before.Annotations[api.AnnotationAllocated], after.Annotations[api.AnnotationAllocated])
		}
	}

	// GPUFailure
	t.Log("section GPUFailure")
	{
		failed := dpUUID(3)
		dp.health.ch <- device.HealthEvent{UUID: failed, Healthy: false, Reason: "Xid 79"}
		waitCapacity("devices of the failed GPU unhealthy", (dpGPUs-1)*slicesPerGPU)
		e.poll("inventory shows the failed GPU", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
			got, err := nodeInventory(ctx, c, node)
			return err == nil && !got.GPUs[3].Healthy && strings.Contains(got.GPUs[3].Reason, "Xid 79"), err
		})
		dp.health.ch <- device.HealthEvent{UUID: failed, Healthy: true}
		waitCapacity("the GPU recovered", dpGPUs*slicesPerGPU)
	}
}

// nodeInventory reads and parses a node's published inventory.
func nodeInventory(ctx context.Context, c *harness.Cluster, node string) (*api.Inventory, error) {
	n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return api.ParseInventory(n.Annotations[api.AnnotationInventory])
}
