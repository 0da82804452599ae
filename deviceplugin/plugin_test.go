package deviceplugin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/tools/events"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// fakeKubelet serves the registration socket.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	srv  *grpc.Server
	regs chan *pluginapi.RegisterRequest
	done chan struct{}
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	path := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(path)
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{srv: grpc.NewServer(), regs: make(chan *pluginapi.RegisterRequest, 16), done: make(chan struct{})}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go func() {
		defer close(k.done)
		_ = k.srv.Serve(lis)
	}()
	return k
}

func (k *fakeKubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- r
	return &pluginapi.Empty{}, nil
}

func (k *fakeKubelet) stop() {
	k.srv.Stop()
	<-k.done
}

// awaitRegistrations steps the clock until n registrations arrive.
func awaitRegistrations(t *testing.T, k *fakeKubelet, clk *testingclock.FakeClock, step time.Duration, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got []string
	for len(got) < n {
		select {
		case r := <-k.regs:
			got = append(got, r.ResourceName+" "+r.Endpoint)
			if !r.Options.GetPreferredAllocationAvailable {
				t.Errorf("%s registered without GetPreferredAllocation", r.ResourceName)
			}
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("got %d of %d registrations: %v", len(got), n, got)
			}
			clk.Step(step)
		}
	}
	return got
}

type fakeDiscoverer []device.GPU

func (f fakeDiscoverer) Discover(context.Context) ([]device.GPU, error) { return f, nil }

type fakeNodes struct {
	mu  sync.Mutex
	ann map[string]string
	n   int
}

func (f *fakeNodes) NodeAnnotation(_ context.Context, _, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ann[key], nil
}

func (f *fakeNodes) PatchNodeAnnotation(_ context.Context, _, key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ann[key] = value
	f.n++
	return nil
}

func (f *fakeNodes) inventory() *api.Inventory {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, err := api.ParseInventory(f.ann[api.AnnotationInventory])
	if err != nil {
		return nil
	}
	return inv
}

// publishOnce sets up a plugin over two 4 GiB GPUs behind iso, publishes
// its inventory once to nodes and returns what nodes then holds (nil when
// that is no inventory).
func publishOnce(ctx context.Context, t *testing.T, iso device.Isolator, nodes *fakeNodes) *api.Inventory {
	t.Helper()
	pods := &fakePods{}
	p, err := New(testConfig(), Deps{
		Discoverer: fakeDiscoverer(testGPUs(2, 4096)), Isolator: iso, Pods: pods,
		PodResources: newFakePR(), Patcher: pods, Nodes: nodes, Clock: testingclock.NewFakeClock(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishInventory(ctx); err != nil {
		t.Fatal(err)
	}
	return nodes.inventory()
}

type fakeHealth struct{ ch chan device.HealthEvent }

func (f *fakeHealth) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeHealth) Events() <-chan device.HealthEvent { return f.ch }

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func TestPluginLifecycle(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := testConfig()
	cfg.PluginDir = dir
	clk := testingclock.NewFakeClock(t0)
	nodes := &fakeNodes{ann: map[string]string{}}
	hs := &fakeHealth{ch: make(chan device.HealthEvent, 4)}
	pods := &fakePods{}
	rec := events.NewFakeRecorder(10)
	gpus := testGPUs(2, 4096)
	gpus[1].Links = []api.Link{{Peer: 0, Type: api.LinkNVLink, NVLinks: 4}}
	gpus[0].Links = []api.Link{{Peer: 1, Type: api.LinkNVLink, NVLinks: 4}}
	p, err := New(cfg, Deps{
		Discoverer: fakeDiscoverer(gpus), NewHealth: func([]string) HealthSource { return hs },
		Isolator: NoIsolation{SlotsPerGPU: 4}, Pods: pods, PodResources: newFakePR(),
		Patcher: pods, Nodes: nodes, Clock: clk, Events: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	kubelet := startKubelet(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		kubelet.stop()
	}()

	regs := awaitRegistrations(t, kubelet, clk, cfg.WatchInterval, 3)
	want := []string{"gpuslice.io/gpu-mem gpuslice-mem.sock", "gpuslice.io/gpu-core gpuslice-core.sock", "gpuslice.io/gpu-count gpuslice-slot.sock"}
	if diff := cmp.Diff(want, regs); diff != "" {
		t.Errorf("registrations (-want +got):\n%s", diff)
	}
	poll(t, "inventory", func() bool { return nodes.inventory() != nil })
	inv := nodes.inventory()
	if len(inv.GPUs) != 2 || inv.GPUs[0].Slices != 4 || inv.GPUs[0].Slots != 4 || !inv.GPUs[0].Healthy || inv.GPUs[1].Links[0].NVLinks != 4 {
		t.Errorf("inventory %+v", inv)
	}

	// ListAndWatch follows health.
	conn, err := grpc.NewClient("unix://"+cfg.SocketPath(KindMem), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := pluginapi.NewDevicePluginClient(conn)
	opts, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil || !opts.PreStartRequired {
		t.Fatalf("options %+v, %v", opts, err)
	}
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Devices) != 8 {
		t.Fatalf("%d gpu-mem devices, want 8", len(first.Devices))
	}
	hs.ch <- device.HealthEvent{UUID: gpuUUID(1), Healthy: false, Reason: "Xid 79"}
	second, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	unhealthy := 0
	for _, d := range second.Devices {
		if d.Health == pluginapi.Unhealthy {
			unhealthy++
		}
	}
	if unhealthy != 4 {
		t.Errorf("%d unhealthy devices after the Xid, want 4", unhealthy)
	}
	poll(t, "unhealthy inventory", func() bool {
		inv := nodes.inventory()
		return inv != nil && !inv.GPUs[1].Healthy && inv.GPUs[1].Reason == "nvml: Xid 79"
	})
	// The node gets an event saying which GPU and why.
	if e, want := <-rec.Events, "Warning GPUUnhealthy GPU 1 ("+gpuUUID(1)+", Test GPU) is unhealthy and takes no new pods: nvml: Xid 79"; e != want {
		t.Errorf("event %q, want %q", e, want)
	}

	// Kubelet restarts: it wipes the directory and re-creates its socket.
	kubelet.stop()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
	kubelet = startKubelet(t, dir)
	if got := awaitRegistrations(t, kubelet, clk, cfg.WatchInterval, 3); len(got) != 3 {
		t.Fatalf("re-registrations %v", got)
	}
	// Our socket removed alone: re-registration too.
	if err := os.Remove(cfg.SocketPath(KindCore)); err != nil {
		t.Fatal(err)
	}
	if got := awaitRegistrations(t, kubelet, clk, cfg.WatchInterval, 3); len(got) != 3 {
		t.Fatalf("re-registrations %v", got)
	}
	// Someone removes the inventory annotation: it is put back.
	if err := nodes.PatchNodeAnnotation(ctx, testNode, api.AnnotationInventory, ""); err != nil {
		t.Fatal(err)
	}
	poll(t, "republished inventory", func() bool {
		if nodes.inventory() != nil {
			return true
		}
		clk.Step(cfg.ReconcileInterval)
		return false
	})
}
