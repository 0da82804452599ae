// Package hostdev owns the device plugin's host character devices: a
// resource such as gpuslice.io/fuse that hands a container one host device
// node (/dev/fuse) through a kubelet DeviceSpec, so that a pod gets the
// device without being privileged or mounting the host's /dev. Each device
// is its own kubelet resource with a fixed count of interchangeable IDs per
// node (a character device such as /dev/fuse can be opened by many
// containers; the count bounds how many pods of the node may have it). The
// devices are configured by name, path, permissions and count (the
// hostDevices section of the DevicePluginConfig); Server serves one and
// keeps it registered with kubelet.
package hostdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/deviceplugin/kubeletreg"
)

// ResourcePrefix is the prefix of every host device resource name.
const ResourcePrefix = "gpuslice.io/"

// MaxCount bounds the IDs one device advertises.
const MaxCount = 1024

// Device is one configured host character device.
type Device struct {
	// Name is the resource's name after gpuslice.io/ (a DNS label), e.g.
	// fuse for gpuslice.io/fuse.
	Name string `json:"name"`
	// Path is the device node on the host and in the container, under /dev.
	Path string `json:"path"`
	// Permissions are the cgroup device permissions: r, w, m, in that order
	// (default rw).
	Permissions string `json:"permissions,omitempty"`
	// Count is how many containers of the node may hold it at once.
	Count int `json:"count"`
}

// Fuse returns the FUSE device: /dev/fuse, read-write, count containers.
func Fuse(count int) Device {
	return Device{Name: "fuse", Path: "/dev/fuse", Permissions: "rw", Count: count}
}

// Resource returns the device's kubelet resource name.
func (d Device) Resource() string { return ResourcePrefix + d.Name }

// Perms returns the permissions, defaulted.
func (d Device) Perms() string {
	if d.Permissions == "" {
		return "rw"
	}
	return d.Permissions
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	perms    = regexp.MustCompile(`^r?w?m?$`)
)

// reserved are the gpuslice resource names the GPU side owns.
var reserved = map[string]bool{"gpu-mem": true, "gpu-core": true, "gpu-count": true}

// Validate checks a device's fields; the errors name the field.
func (d Device) Validate() error {
	var errs []error
	switch {
	case len(d.Name) > 63 || !dnsLabel.MatchString(d.Name):
		errs = append(errs, fmt.Errorf("name: must be a DNS label (lower-case letters, digits, '-'), got %q", d.Name))
	case reserved[d.Name]:
		errs = append(errs, fmt.Errorf("name: %s is a GPU resource of gpuslice", d.Resource()))
	}
	if clean := filepath.Clean(d.Path); !strings.HasPrefix(clean, "/dev/") || clean != d.Path {
		errs = append(errs, fmt.Errorf("path: must be a clean absolute path under /dev/, got %q", d.Path))
	}
	if p := d.Perms(); !perms.MatchString(p) {
		errs = append(errs, fmt.Errorf("permissions: must be a subset of rwm in that order, got %q", d.Permissions))
	}
	if d.Count < 1 || d.Count > MaxCount {
		errs = append(errs, fmt.Errorf("count: must be 1..%d, got %d", MaxCount, d.Count))
	}
	return errors.Join(errs...)
}

// ValidateAll checks the devices and that their names are unique.
func ValidateAll(devs []Device) error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range devs {
		if err := d.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hostDevices[%d]: %w", i, err))
		}
		if seen[d.Name] {
			errs = append(errs, fmt.Errorf("hostDevices[%d].name: %q is listed twice", i, d.Name))
		}
		seen[d.Name] = true
	}
	return errors.Join(errs...)
}

// IDs returns the device's IDs: <name>-0 .. <name>-<count-1>.
func (d Device) IDs() []string {
	out := make([]string, d.Count)
	for i := range out {
		out[i] = d.Name + "-" + strconv.Itoa(i)
	}
	return out
}

// Config is where a Server lives.
type Config struct {
	// PluginDir is kubelet's device plugin directory; KubeletSocket the
	// registration socket's name in it.
	PluginDir     string
	KubeletSocket string
	// SocketPrefix names the socket: <prefix>-<name>.sock.
	SocketPrefix string
	// WatchInterval is how often the sockets and the device node are
	// checked.
	WatchInterval time.Duration
	DialTimeout   time.Duration
	// Stat reports whether the host device node exists and is a character
	// device (default: os.Stat). Tests inject one.
	Stat func(path string) error
}

// Server serves one Device to kubelet.
type Server struct {
	pluginapi.UnimplementedDevicePluginServer
	dev Device
	cfg Config

	mu      sync.Mutex
	srv     *grpc.Server
	served  chan struct{}
	sock    kubeletreg.FileID
	kubelet kubeletreg.FileID
	healthy bool
	// changed is closed and replaced when health changes.
	changed chan struct{}
}

// NewServer returns a server for d; it validates d.
func NewServer(d Device, cfg Config) (*Server, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("host device %s: %w", d.Resource(), err)
	}
	if cfg.Stat == nil {
		cfg.Stat = StatCharDevice
	}
	if cfg.WatchInterval <= 0 || cfg.DialTimeout <= 0 || cfg.PluginDir == "" || cfg.KubeletSocket == "" || cfg.SocketPrefix == "" {
		return nil, errors.New("host device server: plugin dir, kubelet socket, socket prefix, watch interval and dial timeout are required")
	}
	return &Server{dev: d, cfg: cfg, changed: make(chan struct{})}, nil
}

// StatCharDevice reports whether path is a character device.
func StatCharDevice(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("host device: %w", err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("host device %s is not a character device (mode %v)", path, fi.Mode())
	}
	return nil
}

// SocketPath is the server's socket.
func (s *Server) SocketPath() string {
	return filepath.Join(s.cfg.PluginDir, fmt.Sprintf("%s-%s.sock", s.cfg.SocketPrefix, s.dev.Name))
}

// Run serves and registers the device until ctx ends, re-registering when
// kubelet re-creates its socket or the plugin's socket vanishes, and
// re-sending the device list when the host node appears or disappears.
func (s *Server) Run(ctx context.Context) error {
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "resource", s.dev.Resource())
	ctx = klog.NewContext(ctx, logger)
	defer s.stop()
	tick := time.NewTicker(s.cfg.WatchInterval)
	defer tick.Stop()
	for {
		s.checkHealth(ctx)
		if why := s.needsRestart(); why != "" {
			if err := s.start(ctx); err != nil {
				logger.Error(err, "Registration failed; retrying", "reason", why)
			} else {
				logger.Info("Registered host device with kubelet", "reason", why, "path", s.dev.Path, "count", s.dev.Count)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *Server) checkHealth(ctx context.Context) {
	err := s.cfg.Stat(s.dev.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok := err == nil; ok != s.healthy {
		s.healthy = ok
		close(s.changed)
		s.changed = make(chan struct{})
		if ok {
			klog.FromContext(ctx).Info("Host device present", "path", s.dev.Path)
		} else {
			klog.FromContext(ctx).Info("Host device absent: its IDs are unhealthy", "path", s.dev.Path, "err", err.Error())
		}
	}
}

func (s *Server) kubeletSocket() string { return filepath.Join(s.cfg.PluginDir, s.cfg.KubeletSocket) }

// needsRestart says why the server must (re)start and register, or "".
func (s *Server) needsRestart() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	kid, ok := kubeletreg.StatID(s.kubeletSocket())
	switch {
	case !ok:
		return "" // kubelet is down; wait for its socket
	case s.srv == nil:
		return "not registered"
	case kid != s.kubelet:
		return "kubelet restarted"
	}
	if id, ok := kubeletreg.StatID(s.SocketPath()); !ok || id != s.sock {
		return "plugin socket removed"
	}
	return ""
}

func (s *Server) start(ctx context.Context) error {
	s.stop()
	kid, ok := kubeletreg.StatID(s.kubeletSocket())
	if !ok {
		return fmt.Errorf("kubelet registration socket %s not present", s.kubeletSocket())
	}
	path := s.SocketPath()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	id, _ := kubeletreg.StatID(path)
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, s)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(lis); err != nil {
			klog.FromContext(ctx).Error(err, "Host device server stopped")
		}
	}()
	s.mu.Lock()
	s.srv, s.served, s.sock, s.kubelet = srv, served, id, kid
	s.mu.Unlock()
	if err := s.register(ctx); err != nil {
		s.stop()
		return err
	}
	return nil
}

func (s *Server) register(ctx context.Context) error {
	return kubeletreg.Register(ctx, s.kubeletSocket(), s.SocketPath(), s.dev.Resource(), &pluginapi.DevicePluginOptions{}, s.cfg.DialTimeout)
}

func (s *Server) stop() {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-served
	_ = os.Remove(s.SocketPath())
}

// GetDevicePluginOptions implements DevicePluginServer.
func (s *Server) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// Devices returns the device list: every ID, healthy while the host node
// exists.
func (s *Server) Devices() ([]*pluginapi.Device, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	health := pluginapi.Unhealthy
	if s.healthy {
		health = pluginapi.Healthy
	}
	var out []*pluginapi.Device
	for _, id := range s.dev.IDs() {
		out = append(out, &pluginapi.Device{ID: id, Health: health})
	}
	return out, s.changed
}

// ListAndWatch implements DevicePluginServer.
func (s *Server) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		devs, changed := s.Devices()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return fmt.Errorf("send %s devices: %w", s.dev.Resource(), err)
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// Allocate implements DevicePluginServer: every container gets the host
// device node at the same path with the configured permissions, whatever
// number of IDs it asked for.
func (s *Server) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	known := map[string]bool{}
	for _, id := range s.dev.IDs() {
		known[id] = true
	}
	for _, cr := range req.GetContainerRequests() {
		for _, id := range cr.GetDevicesIds() {
			if !known[id] {
				return nil, fmt.Errorf("gpuslice: unknown %s device %q", s.dev.Resource(), id)
			}
		}
		if err := s.cfg.Stat(s.dev.Path); err != nil {
			return nil, fmt.Errorf("gpuslice: %s: %w", s.dev.Resource(), err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Devices: []*pluginapi.DeviceSpec{{ContainerPath: s.dev.Path, HostPath: s.dev.Path, Permissions: s.dev.Perms()}},
		})
	}
	return resp, nil
}
