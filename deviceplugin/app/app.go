// Package app owns the device plugin's options (flags and the versioned
// DevicePluginConfig file of --config, decoded strictly; flags set on the
// command line win over the file, which wins over the defaults) and the wiring
// of its production collaborators (NVML, health monitor, isolation mode,
// client-go, kubelet's pod-resources client; for --isolation=vgpu the sysfs
// discoverer and isolator of deviceplugin/vgpu), plus the hardware check mode
// that hack/gpu-check.sh runs. cmd/gpuslice-device-plugin only parses flags
// and calls Run or Check.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/capability"
	"github.com/gpuslice/gpuslice/deviceplugin/cdi"
	"github.com/gpuslice/gpuslice/deviceplugin/config"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
	"github.com/gpuslice/gpuslice/deviceplugin/health"
	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/deviceplugin/kube"
	"github.com/gpuslice/gpuslice/deviceplugin/metrics"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/deviceplugin/nvml"
	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

// Options are the plugin's flags.
type Options struct {
	// ConfigFile is the --config file (FileConfig); empty: flags only.
	ConfigFile string
	Kubeconfig string
	// NodeName defaults to $NODE_NAME (the downward API).
	NodeName  string
	Plugin    deviceplugin.Config
	Strategy  string
	Isolation string
	// SlotsPerGPU is the sharing slots per GPU in isolation mode none.
	SlotsPerGPU int64
	MPS         mps.Config
	Health      health.Config
	QPS         float32
	Burst       int
	// MetricsListenAddress is host:port of the plain-HTTP /metrics server;
	// empty: none.
	MetricsListenAddress string
	Logs                 *logsapi.LoggingConfiguration
	// HostRoot is where the host's root file system is seen (the
	// node's capabilities are read below it: sys/fs/cgroup).
	HostRoot string
	// VGPU is the config file's vgpu section: the node's sizing under
	// --isolation=vgpu (required there).
	VGPU *vgpu.NodeConfig
	// SysfsRoot is where sysfs is mounted (isolation vgpu).
	SysfsRoot string
	// CDIDir is where the vGPU instances' CDI spec is written (isolation
	// vgpu); empty: none.
	CDIDir string
	// VGPURescanInterval is how often sysfs is rescanned for vanished
	// instances (isolation vgpu).
	VGPURescanInterval time.Duration
	// HostDevices are the config file's hostDevices; FuseCount (--fuse-count)
	// adds or replaces the fuse entry.
	HostDevices []hostdev.Device
	FuseCount   int
	// MPSHardLimit says how MPS v3 puts each container's memory share on
	// its cgroup as the hard limit where the node has memory partitioning
	// (--mps-hard-limit): HardLimitNVML (the default), HardLimitDMemFile or
	// HardLimitOff.
	MPSHardLimit string
}

// Values of --mps-hard-limit.
const (
	// HardLimitNVML sets the limit through nvmlDeviceSetMemoryLimits_v1,
	// as NVIDIA's "MPS v3 Memory Partitioning" asks.
	HardLimitNVML = "nvml"
	// HardLimitDMemFile writes the cgroup's dmem.max directly (the
	// kernel's dmem backend only; see package dmem).
	HardLimitDMemFile = "dmem-file"
	// HardLimitOff sets no hard limit: v3 GPUs then publish enforcement
	// ceiling.
	HardLimitOff = "off"
)

// NewOptions returns the defaults: the one place they are set. The flags
// show them, and a field neither a flag nor the config file sets keeps
// them.
func NewOptions() *Options {
	return &Options{
		NodeName:     os.Getenv("NODE_NAME"),
		HostRoot:     "/",
		MPSHardLimit: HardLimitNVML,
		Plugin:       deviceplugin.DefaultConfig(),
		Strategy:     string(deviceplugin.StrategyCDI),
		Isolation:    string(api.IsolationNone),
		SlotsPerGPU:  16,
		MPS: mps.Config{
			Root:                      mps.DefaultRoot,
			ControlBinary:             mps.DefaultControlBinary,
			ContainerPipeDir:          mps.DefaultContainerPipeDir,
			Scope:                     mps.ScopeGPU,
			MaxClientMemoryPercent:    mps.DefaultMaxClientPercent,
			MaxClientThreadPercentage: mps.DefaultMaxClientPercent,
			DevShm:                    mps.ShmPerDaemon,
			HealthInterval:            mps.DefaultHealthInterval,
			ProbeTimeout:              mps.DefaultProbeTimeout,
			MaxRestartBackoff:         mps.DefaultMaxRestartBackoff,
			Version:                   mps.VersionLegacy,
		},
		Health:             health.DefaultConfig(),
		SysfsRoot:          "/sys",
		CDIDir:             "/var/run/cdi",
		VGPURescanInterval: vgpu.DefaultRescanInterval,
		QPS:                50,
		Burst:              100,
		Logs:               logsapi.NewLoggingConfiguration(),
	}
}

// AddFlags registers the options.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, flagConfig, o.ConfigFile, "Path to a DevicePluginConfig file (apiVersion "+config.ConfigAPIVersion+"; docs/device-plugin.md). Flags set on the command line override it.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig. Empty: in-cluster configuration.")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "This node's name (default $NODE_NAME).")
	fs.Int64Var(&o.Plugin.SliceMiB, "slice-mib", o.Plugin.SliceMiB, fmt.Sprintf("Cluster-wide gpu-mem slice size in MiB (at least %d); must equal the extender's.", api.MinSliceMiB))
	fs.StringVar(&o.Strategy, "device-list-strategy", o.Strategy, fmt.Sprintf("How containers get their GPUs, one of %v (see docs/device-plugin.md for the security notes).", deviceplugin.Strategies()))
	fs.StringVar(&o.Plugin.CDIKind, "cdi-kind", o.Plugin.CDIKind, "CDI device kind of the NVIDIA container toolkit's spec (strategy cdi).")
	fs.IntVar(&o.FuseCount, "fuse-count", o.FuseCount, fmt.Sprintf("Serve /dev/fuse as %s to this many containers of the node at once (0: as the config file's hostDevices say).", hostdev.Fuse(0).Resource()))
	fs.StringVar(&o.Isolation, "isolation", o.Isolation, "Isolation mode: none (share without enforcement), mps, or vgpu (VM sandboxes: the config file's vgpu section sizes the GPUs into vGPU instances or passthrough; GPUs it does not select for vgpu or passthrough are not served; docs/vgpu.md).")
	fs.StringVar(&o.SysfsRoot, "sysfs-root", o.SysfsRoot, "Where sysfs is mounted (isolation vgpu).")
	fs.StringVar(&o.CDIDir, "cdi-dir", o.CDIDir, "Directory the CDI spec of the vGPU instances is written to, for Kata's cold plug (isolation vgpu; empty: none).")
	fs.DurationVar(&o.VGPURescanInterval, "vgpu-rescan-interval", o.VGPURescanInterval, "How often sysfs is rescanned for vGPU instances and GPUs that vanished (isolation vgpu).")
	fs.Int64Var(&o.SlotsPerGPU, "slots-per-gpu", o.SlotsPerGPU, "Sharing slots per GPU in isolation mode none.")
	fs.StringVar(&o.Plugin.PluginDir, "device-plugin-dir", o.Plugin.PluginDir, "kubelet's device plugin directory.")
	fs.StringVar(&o.Plugin.PodResourcesSocket, "pod-resources-socket", o.Plugin.PodResourcesSocket, "kubelet's pod-resources socket.")
	fs.DurationVar(&o.Plugin.WatchInterval, "watch-interval", o.Plugin.WatchInterval, "How often the sockets are checked for re-registration.")
	fs.DurationVar(&o.Plugin.ReconcileInterval, "reconcile-interval", o.Plugin.ReconcileInterval, "How often allocations are reconciled with pod-resources and the inventory re-checked.")
	fs.DurationVar(&o.Health.ProbeInterval, "health-probe-interval", o.Health.ProbeInterval, "How often every GPU is probed.")
	fs.DurationVar(&o.Health.TransientHold, "health-transient-hold", o.Health.TransientHold, "How long a transient Xid keeps a GPU unhealthy.")
	fs.StringVar(&o.MPS.Root, "mps-root", o.MPS.Root, "Host directory of the MPS daemons' pipe/log dirs (isolation mps).")
	fs.StringVar(&o.MPS.ControlBinary, "mps-control-binary", o.MPS.ControlBinary, "MPS control program (isolation mps).")
	fs.IntVar(&o.MPS.DefaultActiveThreadPercentage, "mps-default-thread-percentage", o.MPS.DefaultActiveThreadPercentage, "Thread percentage of containers without gpu-core (isolation mps; 0: --mps-max-client-thread-percentage).")
	fs.StringVar((*string)(&o.MPS.Scope), "mps-scope", string(o.MPS.Scope), fmt.Sprintf("MPS control daemons (isolation mps): %q, one per GPU (a container gets at most one GPU; the inventory says so), or %q, one per node (multi-GPU containers).", mps.ScopeGPU, mps.ScopeNode))
	fs.Int64Var(&o.MPS.ClientCap, "mps-client-cap", o.MPS.ClientCap, "MPS clients per GPU, the GPU's sharing slots (isolation mps; 0: hardware default).")
	fs.StringVar(&o.MPS.ContainerPipeDir, "mps-container-pipe-dir", o.MPS.ContainerPipeDir, "Where containers see their daemon's pipe directory (isolation mps).")
	fs.IntVar(&o.MPS.MaxClientMemoryPercent, "mps-max-client-memory-percent", o.MPS.MaxClientMemoryPercent, "Daemon default pinned-memory limit, percent of each GPU's memory: the most any client can pin whatever its environment says, 1..100 (isolation mps; docs/mps.md).")
	fs.IntVar(&o.MPS.MaxClientThreadPercentage, "mps-max-client-thread-percentage", o.MPS.MaxClientThreadPercentage, "Daemon default active thread percentage: the most any client can use, 1..100 (isolation mps).")
	fs.StringVar((*string)(&o.MPS.DevShm), "mps-dev-shm", string(o.MPS.DevShm), fmt.Sprintf("Containers' /dev/shm under MPS: %q (the daemon's) or %q (isolation mps).", mps.ShmPerDaemon, mps.ShmNone))
	fs.BoolVar(&o.MPS.MultiUserServer, "mps-multi-user-server", o.MPS.MultiUserServer, "Start daemons with -multiuser-server: clients of all UIDs share one server (isolation mps; docs/mps.md).")
	fs.BoolVar(&o.MPS.ReadOnlyPipeMount, "mps-read-only-pipe-mount", o.MPS.ReadOnlyPipeMount, "Mount the pipe directory read-only in containers (isolation mps; not verified on hardware).")
	fs.StringVar(&o.MPSHardLimit, "mps-hard-limit", o.MPSHardLimit, fmt.Sprintf("MPS v3: how each container's gpu-mem share becomes the hard memory limit of its cgroup where the node has memory partitioning (cgroup v2 dmem): %q (NVML, as NVIDIA asks), %q (write dmem.max) or %q (none: v3 GPUs publish enforcement ceiling, not binding).", HardLimitNVML, HardLimitDMemFile, HardLimitOff))
	fs.IntVar(&o.MPS.ClientPriority, "mps-client-priority", o.MPS.ClientPriority, "MPS v3: the client_priority of every namespace and of the server's default one: 0 (normal) or 1 (below normal).")
	fs.IntVar(&o.MPS.Version, "mps-version", o.MPS.Version, fmt.Sprintf("MPS protocol (isolation mps): %d, legacy MPS, or %d, MPS v3 (a namespace per container, binding limits; needs driver >= 615 and CUDA >= 13.4).", mps.VersionLegacy, mps.VersionV3))
	fs.DurationVar(&o.MPS.HealthInterval, "mps-health-interval", o.MPS.HealthInterval, "How often each MPS daemon is probed (isolation mps).")
	fs.DurationVar(&o.MPS.ProbeTimeout, "mps-probe-timeout", o.MPS.ProbeTimeout, "Bound of one MPS control-pipe round trip (isolation mps).")
	fs.DurationVar(&o.MPS.MaxRestartBackoff, "mps-max-restart-backoff", o.MPS.MaxRestartBackoff, "Longest wait between restarts of a failed MPS daemon (isolation mps).")
	fs.StringVar(&o.HostRoot, "host-root", o.HostRoot, "Where the host's root file system is mounted; the node's cgroup v2 controllers are read from <host-root>/sys/fs/cgroup to detect memory partitioning.")
	fs.StringVar(&o.MetricsListenAddress, "metrics-listen-address", o.MetricsListenAddress, "Address (host:port) of the plain-HTTP server of GET /metrics (Prometheus). Empty: no metrics server.")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "QPS of the API client.")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Burst of the API client.")
	logsapi.AddFlags(o.Logs, fs)
}

// Validate checks the options.
func (o *Options) Validate() error {
	o.Plugin.NodeName = o.NodeName
	o.Plugin.Strategy = deviceplugin.Strategy(o.Strategy)
	var errs []error
	if err := o.Plugin.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch api.IsolationMode(o.Isolation) {
	case api.IsolationNone:
		if o.SlotsPerGPU <= 0 {
			errs = append(errs, errors.New("--slots-per-gpu must be positive"))
		}
	case api.IsolationMPS:
		errs = append(errs, validateMPS(o.MPS)...)
		switch o.MPSHardLimit {
		case HardLimitNVML, HardLimitDMemFile, HardLimitOff:
		default:
			errs = append(errs, fmt.Errorf("--mps-hard-limit (mps.hardLimit): must be %q, %q or %q, got %q", HardLimitNVML, HardLimitDMemFile, HardLimitOff, o.MPSHardLimit))
		}
	case api.IsolationVGPU:
		errs = append(errs, o.validateVGPU()...)
	default:
		errs = append(errs, fmt.Errorf("--isolation %q: want none, mps or vgpu", o.Isolation))
	}
	if o.FuseCount < 0 || o.FuseCount > hostdev.MaxCount {
		errs = append(errs, fmt.Errorf("--fuse-count: must be 0..%d, got %d", hostdev.MaxCount, o.FuseCount))
	}
	if err := hostdev.ValidateAll(o.hostDevices()); err != nil {
		errs = append(errs, err)
	}
	if o.Plugin.Strategy == deviceplugin.StrategyCDI {
		if err := cdi.ValidateKind(o.Plugin.CDIKind); err != nil {
			errs = append(errs, fmt.Errorf("--cdi-kind: %w", err))
		}
	}
	if o.Health.ProbeInterval <= 0 || o.Health.TransientHold <= 0 {
		errs = append(errs, errors.New("health intervals must be positive"))
	}
	if o.QPS <= 0 || o.Burst <= 0 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	if o.MetricsListenAddress != "" {
		if _, _, err := net.SplitHostPort(o.MetricsListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen-address %q: %w", o.MetricsListenAddress, err))
		}
	}
	return errors.Join(errs...)
}

// validateVGPU checks the options of isolation vgpu.
func (o *Options) validateVGPU() []error {
	var errs []error
	if o.VGPU == nil || len(o.VGPU.GPUs) == 0 {
		errs = append(errs, fmt.Errorf("--isolation=vgpu needs the vgpu section of a --%s file (which GPUs become vGPU instances or passthrough; docs/vgpu.md)", flagConfig))
	}
	if !filepath.IsAbs(o.SysfsRoot) {
		errs = append(errs, fmt.Errorf("--sysfs-root (sysfsRoot): must be an absolute path, got %q", o.SysfsRoot))
	}
	if o.CDIDir != "" && !filepath.IsAbs(o.CDIDir) {
		errs = append(errs, fmt.Errorf("--cdi-dir (cdiDir): must be an absolute path or empty, got %q", o.CDIDir))
	}
	if o.VGPURescanInterval <= 0 {
		errs = append(errs, fmt.Errorf("--vgpu-rescan-interval (vgpuRescanInterval): must be positive, got %v", o.VGPURescanInterval))
	}
	return errs
}

// hostDevices returns the host devices to serve: the config file's, with
// --fuse-count's fuse entry in place of the file's.
func (o *Options) hostDevices() []hostdev.Device {
	var out []hostdev.Device
	for _, d := range o.HostDevices {
		if o.FuseCount > 0 && d.Name == "fuse" {
			continue
		}
		out = append(out, d)
	}
	if o.FuseCount > 0 {
		out = append(out, hostdev.Fuse(o.FuseCount))
	}
	return out
}

// runHostDevices serves every host device until ctx ends.
func (o *Options) runHostDevices(ctx context.Context) (wait func(), err error) {
	var servers []*hostdev.Server
	for _, d := range o.hostDevices() {
		s, err := hostdev.NewServer(d, hostdev.Config{
			PluginDir: o.Plugin.PluginDir, KubeletSocket: o.Plugin.KubeletSocket, SocketPrefix: o.Plugin.SocketPrefix,
			WatchInterval: o.Plugin.WatchInterval, DialTimeout: o.Plugin.DialTimeout,
		})
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { _ = s.Run(ctx) })
	}
	return wg.Wait, nil
}

func (o *Options) isolator(lib nvml.Library, clk clock.WithTicker) (device.Isolator, error) {
	switch api.IsolationMode(o.Isolation) {
	case api.IsolationMPS:
	case api.IsolationVGPU:
		return nil, errors.New("isolation vgpu: use vgpuIsolator")
	default:
		return deviceplugin.NoIsolation{SlotsPerGPU: o.SlotsPerGPU}, nil
	}
	cfg := o.MPS
	cfg.Clock = clk
	if cfg.Version == mps.VersionV3 {
		if err := requireMPSv3(o.Plugin.Capabilities); err != nil {
			return nil, err
		}
		hl, err := o.hardLimits(lib)
		if err != nil {
			return nil, err
		}
		cfg.HardLimits = hl
	}
	m, err := mps.NewManager(cfg, nil, nvml.ComputeModes{Lib: lib})
	if err != nil {
		return nil, fmt.Errorf("MPS isolation: %w", err)
	}
	return m, nil
}

// hardLimits returns MPS v3's hard memory limiter, or nil where the node
// has no memory partitioning (cgroup v2 with the dmem controller) or
// --mps-hard-limit is off. Containers' cgroups are found under
// <host-root>/sys/fs/cgroup.
func (o *Options) hardLimits(lib nvml.Library) (mps.HardLimiter, error) {
	root := filepath.Join(o.HostRoot, "sys/fs/cgroup")
	var lim dmem.Limiter
	switch o.MPSHardLimit {
	case HardLimitNVML:
		lim = nvml.MemoryLimits{Lib: lib}
	case HardLimitDMemFile:
		lim = dmem.FileLimiter{Root: root}
	case HardLimitOff:
		return nil, nil
	default:
		return nil, fmt.Errorf("--mps-hard-limit %q: must be %q, %q or %q", o.MPSHardLimit, HardLimitNVML, HardLimitDMemFile, HardLimitOff)
	}
	caps := o.Plugin.Capabilities
	switch {
	case caps == nil || !caps.CgroupV2 || caps.MemoryPartitioning == "":
		return nil, nil
	case o.MPSHardLimit == HardLimitDMemFile && caps.MemoryPartitioning != api.MemoryPartitioningDMem:
		// The misc backend has no dmem.* files; only NVML sets its limits.
		return nil, nil
	}
	return &dmem.Enforcer{Root: root, Limiter: lim}, nil
}

// requireMPSv3 refuses MPS v3 on a node whose capability detection did not
// find it (or could not run).
func requireMPSv3(caps *api.Capabilities) error {
	switch {
	case caps == nil:
		return errors.New("--mps-version=3 (mps.version: 3): the node's capabilities could not be detected, so MPS v3 support is unknown; use MPS version 2")
	case !caps.MPSv3:
		return fmt.Errorf("--mps-version=3 (mps.version: 3): the node does not support MPS v3 (driver %s, CUDA %s; MPS v3 needs driver >= %d and CUDA >= %s); use MPS version 2",
			caps.DriverVersion, caps.CUDAVersion, capability.MinMPSv3DriverMajor, capability.CUDAVersion(capability.MinMPSv3CUDA))
	}
	return nil
}

// vgpuIsolator returns the vgpu mode's discoverer and isolator over
// o.SysfsRoot; nv (nil when NVML is unavailable) names the GPUs NVML sees,
// pr tells which GPUs pods hold.
func (o *Options) vgpuIsolator(nv vgpu.GPULister, pr deviceplugin.PodResources, clk clock.WithTicker) (*vgpu.Discoverer, *vgpu.Isolator, error) {
	root, err := sysfs.NewRoot(o.SysfsRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("--sysfs-root: %w", err)
	}
	var nodeCfg vgpu.NodeConfig
	if o.VGPU != nil {
		nodeCfg = *o.VGPU
	}
	iso, err := vgpu.NewIsolator(vgpu.IsolatorConfig{
		FS: root, Config: nodeCfg, ResourceName: api.ResourceGPUMem, CDIDir: o.CDIDir,
		RescanInterval: o.VGPURescanInterval, Clock: clk,
		InUse:    vgpu.ProcInUse{ProcRoot: filepath.Join(o.HostRoot, "proc")},
		HeldGPUs: func(ctx context.Context) (map[string]bool, error) { return deviceplugin.HeldGPUs(ctx, pr) },
	})
	if err != nil {
		return nil, nil, err
	}
	return &vgpu.Discoverer{FS: root, NVML: nv}, iso, nil
}

func initNVML(lib nvml.Library) error {
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		return fmt.Errorf("initialise NVML (is the NVIDIA driver installed and the plugin running with access to it?): %s", gonvml.ErrorString(ret))
	}
	return nil
}

// Run runs the device plugin until ctx ends.
func Run(ctx context.Context, o *Options) error {
	logger := klog.FromContext(ctx)
	var cfg *rest.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("kube client config: %w", err)
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kube client: %w", err)
	}
	vgpuMode := api.IsolationMode(o.Isolation) == api.IsolationVGPU
	lib := nvml.NewLibrary()
	haveNVML := true
	if err := initNVML(lib); err != nil {
		if !vgpuMode {
			return err
		}
		// A passthrough node may have no GPU on the nvidia driver at all.
		logger.Info("NVML unavailable; serving vGPU and passthrough GPUs by their sysfs identity, without NVML health", "err", err)
		haveNVML = false
	} else {
		defer func() { _ = lib.Shutdown() }()
	}
	if haveNVML {
		o.Plugin.Capabilities = o.detect(ctx, lib)
	}
	clk := clock.RealClock{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pods := kube.NewPodCache(cs, o.NodeName, 0)
	defer pods.Shutdown()
	defer cancel()
	if err := pods.Start(ctx); err != nil {
		return err
	}
	pr, err := kube.NewPodResourcesClient(o.Plugin.PodResourcesSocket, o.Plugin.DialTimeout)
	if err != nil {
		return err
	}
	defer func() { _ = pr.Close() }()
	disc := &nvml.Discovery{Lib: lib, Sysfs: nvml.HostSysfs{}}
	var discoverer deviceplugin.Discoverer = disc
	var iso device.Isolator
	if vgpuMode {
		var nv vgpu.GPULister
		if haveNVML {
			nv = disc
		}
		vd, vi, err := o.vgpuIsolator(nv, pr, clk)
		if err != nil {
			return err
		}
		discoverer, iso = vd, vi
	} else {
		if iso, err = o.isolator(lib, clk); err != nil {
			return err
		}
		checkStrategy(ctx, o, disc)
	}
	var newHealth func(uuids []string) deviceplugin.HealthSource
	if haveNVML {
		newHealth = func(uuids []string) deviceplugin.HealthSource {
			// NVML watches only the GPUs it sees (vgpu mode: not those on vfio-pci).
			uuids = slices.DeleteFunc(slices.Clone(uuids), vgpu.IsPCIID)
			return health.NewMonitor(lib, disc, clk, o.Health, uuids)
		}
	}
	var memory deviceplugin.MemoryReader
	if haveNVML {
		memory = disc
	}
	client := kube.Client{Kube: cs}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return fmt.Errorf("start event recording: %w", err)
	}
	defer broadcaster.Shutdown()
	m := metrics.New()
	p, err := deviceplugin.New(o.Plugin, deviceplugin.Deps{
		Discoverer: discoverer, NewHealth: newHealth,
		Isolator: iso, Pods: pods, PodResources: pr, Patcher: client, Nodes: client, Clock: clk,
		Metrics: m, Events: broadcaster.NewRecorder(scheme.Scheme, EventsComponent), Memory: memory,
	})
	if err != nil {
		return err
	}
	if o.MetricsListenAddress != "" {
		stop, err := ServeMetrics(ctx, o.MetricsListenAddress, m)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.VGPU != nil && len(o.VGPU.GPUs) > 0 && !vgpuMode {
		logger.Info("The config file's vgpu section applies only under --isolation=vgpu; ignored", "entries", len(o.VGPU.GPUs))
	}
	logger.Info("Starting gpuslice device plugin", "config", o.ConfigFile, "node", o.NodeName, "isolation", o.Isolation, "strategy", o.Strategy, "sliceMiB", o.Plugin.SliceMiB)
	hostCtx, stopHost := context.WithCancel(ctx)
	waitHost, err := o.runHostDevices(hostCtx)
	if err != nil {
		stopHost()
		return err
	}
	defer waitHost()
	defer stopHost()
	return p.Run(ctx)
}

// detect returns the node's capabilities, or nil (logged) when they
// cannot be detected: the plugin still serves, its inventory just does not
// say what the node could do.
func (o *Options) detect(ctx context.Context, lib nvml.Library) *api.Capabilities {
	caps, err := capability.Detect(lib, os.DirFS(o.HostRoot))
	if err != nil {
		klog.FromContext(ctx).Error(err, "Detecting the node's isolation capabilities")
		return nil
	}
	klog.FromContext(ctx).Info("Node capabilities", "driver", caps.DriverVersion, "cuda", caps.CUDAVersion,
		"mpsV3", caps.MPSv3, "cgroupV2", caps.CgroupV2, "memoryPartitioning", caps.MemoryPartitioning)
	return &caps
}

// EnvVarWarning is logged at start under the envvar strategy.
const EnvVarWarning = "WARNING: device list strategy envvar: any unprivileged pod that sets NVIDIA_VISIBLE_DEVICES itself sees every GPU of the node," +
	" unless the NVIDIA container toolkit's config.toml has accept-nvidia-visible-devices-envvar-when-unprivileged = false" +
	" (the admission policy gpuslice-gpu-env rejects such pods, but only where it is installed); prefer --device-list-strategy=cdi"

// checkStrategy logs what the device list strategy depends on: the envvar
// warning, or whether the node's CDI specs resolve every GPU (a missing
// device makes the runtime refuse the container; the plugin still starts,
// since the spec may be generated after it).
func checkStrategy(ctx context.Context, o *Options, disc *nvml.Discovery) {
	logger := klog.FromContext(ctx)
	switch o.Plugin.Strategy {
	case deviceplugin.StrategyEnvVar:
		logger.Info(EnvVarWarning, "toolkitSetting", "accept-nvidia-visible-devices-envvar-when-unprivileged")
	case deviceplugin.StrategyCDI:
		found, err := disc.Discover(ctx)
		if err != nil {
			logger.Error(err, "Cannot list the GPUs to verify the CDI specs")
			return
		}
		var uuids []string
		for _, g := range found {
			if !g.MIGEnabled {
				uuids = append(uuids, g.UUID)
			}
		}
		rep, err := cdi.Verify(o.Plugin.CDIKind, uuids)
		switch {
		case err != nil:
			logger.Error(err, "Cannot verify the CDI specs", "kind", o.Plugin.CDIKind)
		case len(rep.Dirs) == 0:
			logger.Info("WARNING: no CDI spec directory is visible to the plugin; cannot verify that the runtime resolves the GPUs (mount /etc/cdi and /var/run/cdi read-only)", "kind", o.Plugin.CDIKind)
		case len(rep.Missing) > 0:
			logger.Info("WARNING: the node's CDI specs do not resolve these GPUs; the runtime will refuse their containers until the toolkit's spec names them", "missing", rep.Missing, "specErrors", rep.SpecErrors, "generate", cdi.GenerateHint)
		default:
			logger.Info("CDI specs resolve every GPU", "kind", o.Plugin.CDIKind, "dirs", rep.Dirs, "gpus", len(uuids))
		}
	}
}

// CheckReport is what Check prints as JSON.
type CheckReport struct {
	DriverVersion string            `json:"driverVersion"`
	Inventory     *api.Inventory    `json:"inventory"`
	Skipped       []string          `json:"skipped,omitempty"`
	Health        map[string]string `json:"health"`
	XidEvents     string            `json:"xidEvents"`
}

// Check runs discovery and one health probe against the real NVML and
// writes the inventory JSON, a topology matrix and the health of each GPU.
func Check(ctx context.Context, o *Options, w io.Writer) error {
	lib := nvml.NewLibrary()
	if err := initNVML(lib); err != nil {
		return err
	}
	defer func() { _ = lib.Shutdown() }()
	return check(ctx, lib, o, w)
}

func check(ctx context.Context, lib nvml.Library, o *Options, w io.Writer) error {
	rep := CheckReport{Health: map[string]string{}}
	if v, ret := lib.SystemGetDriverVersion(); ret == gonvml.SUCCESS {
		rep.DriverVersion = v
	}
	disc := &nvml.Discovery{Lib: lib, Sysfs: nvml.HostSysfs{}}
	found, err := disc.Discover(ctx)
	if err != nil {
		return err
	}
	iso := deviceplugin.NoIsolation{SlotsPerGPU: o.SlotsPerGPU}
	gpus, err := deviceplugin.BuildGPUs(ctx, found, o.Plugin.SliceMiB, iso)
	if err != nil {
		return err
	}
	for _, g := range found {
		if g.MIGEnabled {
			rep.Skipped = append(rep.Skipped, g.UUID+": MIG enabled")
		}
	}
	st := deviceplugin.NewState(gpus)
	var uuids []string
	for _, g := range gpus {
		uuids = append(uuids, g.UUID)
	}
	mon := health.NewMonitor(lib, disc, clock.RealClock{}, o.Health, uuids)
	mon.ProbeAll(ctx)
	for _, u := range uuids {
		ok, why := mon.Status(u)
		if ok {
			why = "healthy"
		}
		rep.Health[u] = why
		st.SetHealth(u, deviceplugin.SourceNVML, ok, why)
	}
	rep.XidEvents = xidSupport(lib, uuids)
	rep.Inventory = st.Inventory(o.Plugin.SliceMiB, iso.Mode(), o.detect(ctx, lib))
	if err := rep.Inventory.Validate(); err != nil {
		return fmt.Errorf("discovered inventory is invalid: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return writeTopology(w, rep.Inventory)
}

// xidSupport says whether Xid events can be registered on every GPU.
func xidSupport(lib nvml.Library, uuids []string) string {
	set, ret := lib.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return "unavailable: " + gonvml.ErrorString(ret)
	}
	defer func() { _ = set.Free() }()
	var bad []string
	for _, u := range uuids {
		dev, ret := lib.DeviceGetHandleByUUID(u)
		if ret == gonvml.SUCCESS {
			ret = dev.RegisterEvents(gonvml.EventTypeXidCriticalError, set)
		}
		if ret != gonvml.SUCCESS {
			bad = append(bad, u+": "+gonvml.ErrorString(ret))
		}
	}
	if len(bad) > 0 {
		return "not on " + strings.Join(bad, "; ")
	}
	return "registered on every GPU"
}

func writeTopology(w io.Writer, inv *api.Inventory) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "\nTOPOLOGY")
	for _, g := range inv.GPUs {
		fmt.Fprintf(tw, "\tGPU%d", g.Index)
	}
	fmt.Fprintln(tw, "\tNUMA\tPCI")
	for _, g := range inv.GPUs {
		fmt.Fprintf(tw, "GPU%d", g.Index)
		for _, p := range inv.GPUs {
			cell := "X"
			for _, l := range g.Links {
				if l.Peer == p.Index {
					cell = string(l.Type)
					if l.NVLinks > 0 {
						cell = fmt.Sprintf("NV%d", l.NVLinks)
					}
				}
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintf(tw, "\t%d\t%s\n", g.NUMANode, g.PCIBusID)
	}
	return tw.Flush()
}
