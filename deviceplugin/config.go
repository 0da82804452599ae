package deviceplugin

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuslice/gpuslice/api"
)

// Config is the plugin's configuration, filled from flags by main.
type Config struct {
	// NodeName is the node the plugin runs on.
	NodeName string
	// SliceMiB is the cluster-wide gpu-mem slice size; it must equal the
	// extender's.
	SliceMiB int64
	// Strategy is how the container gets its GPUs.
	Strategy Strategy
	// CDIKind is the CDI device kind of the NVIDIA toolkit's spec.
	CDIKind string
	// PluginDir is kubelet's device plugin directory; the plugin's sockets
	// and kubelet's registration socket live there.
	PluginDir string
	// KubeletSocket is the registration socket's file name in PluginDir.
	KubeletSocket string
	// SocketPrefix names the plugin's sockets: <prefix>-<mem|core|slot>.sock.
	SocketPrefix string
	// PodResourcesSocket is kubelet's pod-resources socket.
	PodResourcesSocket string
	// WatchInterval is how often sockets are checked for re-registration.
	WatchInterval time.Duration
	// ReconcileInterval is how often allocations are reconciled with
	// pod-resources and the inventory re-published.
	ReconcileInterval time.Duration
	// DialTimeout bounds connections to kubelet.
	DialTimeout time.Duration
	// Capabilities is what the node was detected to support, published in
	// the inventory; nil when not detected.
	Capabilities *api.Capabilities
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		SliceMiB:           api.DefaultSliceMiB,
		Strategy:           StrategyCDI,
		CDIKind:            "nvidia.com/gpu",
		PluginDir:          pluginapi.DevicePluginPath,
		KubeletSocket:      filepath.Base(pluginapi.KubeletSocket),
		SocketPrefix:       "gpuslice",
		PodResourcesSocket: "/var/lib/kubelet/pod-resources/kubelet.sock",
		WatchInterval:      2 * time.Second,
		ReconcileInterval:  10 * time.Second,
		DialTimeout:        10 * time.Second,
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.NodeName == "":
		return errors.New("node name is required")
	case c.SliceMiB < api.MinSliceMiB:
		return fmt.Errorf("slice size %d MiB is below the minimum of %d MiB", c.SliceMiB, api.MinSliceMiB)
	case !c.Strategy.Known():
		return fmt.Errorf("unknown device list strategy %q (want one of %v)", c.Strategy, Strategies())
	case c.Strategy == StrategyCDI && c.CDIKind == "":
		return errors.New("the cdi strategy needs a CDI kind")
	case c.PluginDir == "" || c.KubeletSocket == "" || c.SocketPrefix == "":
		return errors.New("plugin directory, kubelet socket and socket prefix are required")
	case c.WatchInterval <= 0 || c.ReconcileInterval <= 0 || c.DialTimeout <= 0:
		return errors.New("intervals and timeouts must be positive")
	}
	return nil
}

// SocketPath returns the plugin's socket for kind k.
func (c *Config) SocketPath(k Kind) string {
	return filepath.Join(c.PluginDir, fmt.Sprintf("%s-%s.sock", c.SocketPrefix, k))
}
