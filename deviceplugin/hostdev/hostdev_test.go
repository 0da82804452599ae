package hostdev

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  Device
		err  string
	}{
		{"fuse", Fuse(8), ""},
		{"tun", Device{Name: "tun", Path: "/dev/net/tun", Permissions: "rwm", Count: 1}, ""},
		{"default permissions", Device{Name: "x", Path: "/dev/x", Count: 1}, ""},
		{"name", Device{Name: "Fuse", Path: "/dev/fuse", Count: 1}, "name: must be a DNS label"},
		{"reserved", Device{Name: "gpu-mem", Path: "/dev/fuse", Count: 1}, "gpuslice.io/gpu-mem is a GPU resource"},
		{"outside /dev", Device{Name: "x", Path: "/etc/shadow", Count: 1}, "path: must be a clean absolute path under /dev/"},
		{"escape", Device{Name: "x", Path: "/dev/../etc/shadow", Count: 1}, "path:"},
		{"/dev itself", Device{Name: "x", Path: "/dev/", Count: 1}, "path:"},
		{"permissions", Device{Name: "x", Path: "/dev/x", Permissions: "wr", Count: 1}, "permissions: must be a subset of rwm"},
		{"count 0", Device{Name: "x", Path: "/dev/x", Count: 0}, "count: must be 1..1024, got 0"},
		{"count big", Device{Name: "x", Path: "/dev/x", Count: MaxCount + 1}, "count:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dev.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
	if err := ValidateAll([]Device{Fuse(1), Fuse(2)}); err == nil || !strings.Contains(err.Error(), `hostDevices[1].name: "fuse" is listed twice`) {
		t.Errorf("duplicate: %v", err)
	}
}

func newTestServer(t *testing.T, stat func(string) error) *Server {
	t.Helper()
	s, err := NewServer(Fuse(3), Config{PluginDir: t.TempDir(), KubeletSocket: "kubelet.sock", SocketPrefix: "gpuslice",
		WatchInterval: time.Second, DialTimeout: time.Second, Stat: stat})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAllocate(t *testing.T) {
	s := newTestServer(t, func(string) error { return nil })
	got, err := s.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"fuse-0"}}, {DevicesIds: []string{"fuse-1", "fuse-2"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := &pluginapi.ContainerAllocateResponse{Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rw"}}}
	want := &pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{spec, spec}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Allocate (-want +got):\n%s", diff)
	}
	if _, err := s.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"fuse-3"}}}}); err == nil || !strings.Contains(err.Error(), `unknown gpuslice.io/fuse device "fuse-3"`) {
		t.Errorf("unknown ID: %v", err)
	}
	gone := newTestServer(t, func(string) error { return errors.New("no /dev/fuse") })
	if _, err := gone.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"fuse-0"}}}}); err == nil || !strings.Contains(err.Error(), "no /dev/fuse") {
		t.Errorf("absent device: %v", err)
	}
}

func TestHealthFollowsTheDeviceNode(t *testing.T) {
	present := false
	s := newTestServer(t, func(string) error {
		if present {
			return nil
		}
		return errors.New("absent")
	})
	health := func() []string {
		devs, _ := s.Devices()
		var out []string
		for _, d := range devs {
			out = append(out, d.ID+"="+d.Health)
		}
		return out
	}
	s.checkHealth(context.Background())
	if diff := cmp.Diff([]string{"fuse-0=Unhealthy", "fuse-1=Unhealthy", "fuse-2=Unhealthy"}, health()); diff != "" {
		t.Errorf("absent node (-want +got):\n%s", diff)
	}
	_, changed := s.Devices()
	present = true
	s.checkHealth(context.Background())
	select {
	case <-changed:
	default:
		t.Error("no change signalled when the device node appeared")
	}
	if diff := cmp.Diff([]string{"fuse-0=Healthy", "fuse-1=Healthy", "fuse-2=Healthy"}, health()); diff != "" {
		t.Errorf("present node (-want +got):\n%s", diff)
	}
}
