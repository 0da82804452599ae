package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"

	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// TestFUSEDevice is issue 14's FUSE resource: the device plugin's host
// device servers (package deviceplugin/hostdev, as --fuse-count and the
// config's hostDevices run them) register gpuslice.io/fuse and a generic
// device with kubelet's own device manager, which advertises their counts;
// a pod that requests gpuslice.io/fuse and adds SYS_ADMIN (no GPU, not
// privileged) is admitted by the real API server's policies and gets
// exactly /dev/fuse, read-write, as a DeviceSpec through Allocate and
// GetDeviceRunContainerOptions; the count bounds how many containers hold
// it. /dev/fuse is the host's: where the machine has none, its IDs must be
// unhealthy and allocation must fail (the generic device, /dev/null, is
// always there).
func TestFUSEDevice(t *testing.T) {
	pluginDirOwned(t)
	c := startCluster(t, harness.Options{WithoutScheduler: true})
	ctx := klog.NewContext(t.Context(), klog.Background().WithName("hostdev"))
	kl := startDPKubelet(t, filepath.Join(t.TempDir(), "pod-resources.sock"))
	fuse := hostdev.Fuse(2)
	null := hostdev.Device{Name: "null", Path: "/dev/null", Permissions: "r", Count: 3}
	_, statErr := os.Stat(fuse.Path)
	fusePresent := statErr == nil
	t.Logf("host %s present: %v", fuse.Path, fusePresent)
	for _, d := range []hostdev.Device{fuse, null} {
		s, err := hostdev.NewServer(d, hostdev.Config{
			PluginDir: pluginapi.DevicePluginPath, KubeletSocket: filepath.Base(pluginapi.KubeletSocket), SocketPrefix: "gpuslice-e2e",
			WatchInterval: 100 * time.Millisecond, DialTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(sctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	e := &env{t: t, c: c, ctx: ctx}
	e.poll("host devices advertised", 50*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
		wantFuse := int64(0)
		if fusePresent {
			wantFuse = int64(fuse.Count)
		}
		f, n := kl.allocatable(fuse.Resource()), kl.allocatable(null.Resource())
		capacity, _, _ := kl.manager().GetCapacity(kl.logger)
		fc := capacity[corev1.ResourceName(fuse.Resource())]
		return f == wantFuse && n == int64(null.Count) && fc.Value() == int64(fuse.Count),
			fmt.Errorf("allocatable %s=%d (want %d, capacity %d), %s=%d (want %d)", fuse.Resource(), f, wantFuse, fc.Value(), null.Resource(), n, null.Count)
	})

	ns := secNamespace(t, c, "fuse", nil)
	// mk creates a pod asking for one of res. A FUSE pod adds SYS_ADMIN
	// (for mount) and runs under the shipped AppArmor and seccomp profiles
	// (docs/fuse.md); the admission policy allows SYS_ADMIN only with
	// gpuslice.io/fuse and no GPU.
	mk := func(name string, res string) *corev1.Pod {
		p := secPod(corev1.ResourceList{corev1.ResourceName(res): resource.MustParse("1")})
		p.Name = name
		if res == fuse.Resource() {
			caps("SYS_ADMIN")(&p.Spec.Containers[0])
			p.Spec.Containers[0].SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptrTo("gpuslice-fuse")}
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptrTo("gpuslice/fuse.json")}
		}
		created, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return created
	}
	devices := func(p *corev1.Pod) []kubecontainer.DeviceInfo {
		return kl.mustRunOptions(ctx, t, p).Devices
	}

	t.Run("FUSEPod", func(t *testing.T) {
		p := mk("s3fs", fuse.Resource())
		err := kl.admit(ctx, p)
		if !fusePresent {
			if err == nil {
				t.Fatalf("allocated %s on a host without %s", fuse.Resource(), fuse.Path)
			}
			t.Logf("no %s on this host: allocation refused: %v", fuse.Path, err)
			return
		}
		if err != nil {
			t.Fatalf("admit: %v", err)
		}
		want := []kubecontainer.DeviceInfo{
			{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", Permissions: "rw"},
		}
		if diff := cmp.Diff(want, devices(p)); diff != "" {
			t.Errorf("device specs (-want +got):\n%s", diff)
		}
	})

	t.Run("CountBoundsHolders", func(t *testing.T) {
		// null has 3 IDs: three pods get it, the fourth is refused by
		// kubelet's own accounting.
		var held int
		for i := range null.Count + 1 {
			p := mk(fmt.Sprintf("holder-%d", i), null.Resource())
			err := kl.admit(ctx, p)
			switch {
			case i < null.Count && err != nil:
				t.Fatalf("holder %d: %v", i, err)
			case i < null.Count:
				held++
				want := []kubecontainer.DeviceInfo{{PathOnHost: "/dev/null", PathInContainer: "/dev/null", Permissions: "r"}}
				if diff := cmp.Diff(want, devices(p)); diff != "" {
					t.Errorf("holder %d device specs (-want +got):\n%s", i, diff)
				}
			case err == nil:
				t.Fatalf("a %d-th holder of %s (count %d) was admitted", i+1, null.Resource(), null.Count)
			default:
				t.Logf("holder %d refused: %v", i, err)
			}
		}
		if held != null.Count {
			t.Errorf("%d holders, want %d", held, null.Count)
		}
	})
}
