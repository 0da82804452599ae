package app

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gpuslice/gpuslice/deviceplugin/config"
	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
)

// flagConfig names the config file flag.
const flagConfig = "config"

// Complete reads the --config file, if any, into o: each field the file
// sets replaces the default unless its flag was set on the command line
// (fs.Changed), so the precedence is command line, then file, then
// NewOptions' defaults.
func (o *Options) Complete(fs *pflag.FlagSet) error {
	if o.ConfigFile == "" {
		return nil
	}
	data, err := os.ReadFile(o.ConfigFile)
	if err != nil {
		return fmt.Errorf("read --%s: %w", flagConfig, err)
	}
	fc, err := config.DecodeConfigFile(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", o.ConfigFile, err)
	}
	o.ApplyFile(fc, fs.Changed)
	return nil
}

// ApplyFile copies every field fc sets into o, except those whose flag
// changed reports as set on the command line.
func (o *Options) ApplyFile(fc *config.FileConfig, changed func(flag string) bool) {
	str := func(flag string, v *string, dst *string) {
		if v != nil && !changed(flag) {
			*dst = *v
		}
	}
	i64 := func(flag string, v *int64, dst *int64) {
		if v != nil && !changed(flag) {
			*dst = *v
		}
	}
	num := func(flag string, v *int, dst *int) {
		if v != nil && !changed(flag) {
			*dst = *v
		}
	}
	boolean := func(flag string, v *bool, dst *bool) {
		if v != nil && !changed(flag) {
			*dst = *v
		}
	}
	dur := func(flag string, v *string, dst *time.Duration) {
		if v == nil || changed(flag) {
			return
		}
		if d, err := time.ParseDuration(*v); err == nil { // validated by DecodeConfigFile
			*dst = d
		}
	}
	i64("slice-mib", fc.SliceMiB, &o.Plugin.SliceMiB)
	str("isolation", fc.Isolation, &o.Isolation)
	i64("slots-per-gpu", fc.SlotsPerGPU, &o.SlotsPerGPU)
	str("device-list-strategy", fc.DeviceListStrategy, &o.Strategy)
	str("cdi-kind", fc.CDIKind, &o.Plugin.CDIKind)
	str("metrics-listen-address", fc.MetricsListenAddress, &o.MetricsListenAddress)
	m := fc.MPS
	str("mps-root", m.Root, &o.MPS.Root)
	str("mps-control-binary", m.ControlBinary, &o.MPS.ControlBinary)
	str("mps-container-pipe-dir", m.ContainerPipeDir, &o.MPS.ContainerPipeDir)
	str("mps-scope", m.Scope, (*string)(&o.MPS.Scope))
	i64("mps-client-cap", m.ClientCap, &o.MPS.ClientCap)
	num("mps-default-thread-percentage", m.DefaultActiveThreadPercentage, &o.MPS.DefaultActiveThreadPercentage)
	num("mps-max-client-memory-percent", m.MaxClientMemoryPercent, &o.MPS.MaxClientMemoryPercent)
	num("mps-max-client-thread-percentage", m.MaxClientThreadPercentage, &o.MPS.MaxClientThreadPercentage)
	str("mps-dev-shm", m.DevShm, (*string)(&o.MPS.DevShm))
	boolean("mps-multi-user-server", m.MultiUserServer, &o.MPS.MultiUserServer)
	num("mps-version", m.Version, &o.MPS.Version)
	boolean("mps-read-only-pipe-mount", m.ReadOnlyPipeMount, &o.MPS.ReadOnlyPipeMount)
	num("mps-client-priority", m.ClientPriority, &o.MPS.ClientPriority)
	str("mps-hard-limit", m.HardLimit, &o.MPSHardLimit)
	dur("mps-health-interval", m.HealthInterval, &o.MPS.HealthInterval)
	dur("mps-probe-timeout", m.ProbeTimeout, &o.MPS.ProbeTimeout)
	dur("mps-max-restart-backoff", m.MaxRestartBackoff, &o.MPS.MaxRestartBackoff)
	str("sysfs-root", fc.SysfsRoot, &o.SysfsRoot)
	str("cdi-dir", fc.CDIDir, &o.CDIDir)
	dur("vgpu-rescan-interval", fc.VGPURescanInterval, &o.VGPURescanInterval)
	o.VGPU = fc.VGPU
	o.HostDevices = append([]hostdev.Device(nil), fc.HostDevices...)
}

// validateMPS checks the merged MPS options; each error names the flag and
// the config file field, since either may have set the value.
func validateMPS(c mps.Config) []error {
	var errs []error
	bad := func(flag, field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s (mps.%s): "+format, append([]any{flag, field}, args...)...))
	}
	switch c.Scope {
	case mps.ScopeGPU, mps.ScopeNode:
	default:
		bad("mps-scope", "scope", "must be %q or %q, got %q", mps.ScopeGPU, mps.ScopeNode, c.Scope)
	}
	if c.Version != mps.VersionLegacy && c.Version != mps.VersionV3 {
		bad("mps-version", "version", "must be %d (legacy MPS) or %d (MPS v3), got %d", mps.VersionLegacy, mps.VersionV3, c.Version)
	}
	switch c.DevShm {
	case mps.ShmPerDaemon, mps.ShmNone:
	default:
		bad("mps-dev-shm", "devShm", "must be %q or %q, got %q", mps.ShmPerDaemon, mps.ShmNone, c.DevShm)
	}
	if c.MaxClientMemoryPercent < 1 || c.MaxClientMemoryPercent > config.PercentMax {
		bad("mps-max-client-memory-percent", "maxClientMemoryPercent", "must be 1..100, got %d", c.MaxClientMemoryPercent)
	}
	if c.MaxClientThreadPercentage < 1 || c.MaxClientThreadPercentage > config.PercentMax {
		bad("mps-max-client-thread-percentage", "maxClientThreadPercentage", "must be 1..100, got %d", c.MaxClientThreadPercentage)
	}
	switch d := c.DefaultActiveThreadPercentage; {
	case d < 0 || d > config.PercentMax:
		bad("mps-default-thread-percentage", "defaultActiveThreadPercentage", "must be 1..100 (0: the max client thread percentage), got %d", d)
	case d > c.MaxClientThreadPercentage:
		bad("mps-default-thread-percentage", "defaultActiveThreadPercentage", "%d is above the max client thread percentage %d, which the daemon enforces", d, c.MaxClientThreadPercentage)
	}
	if c.ClientPriority != 0 && c.ClientPriority != 1 {
		bad("mps-client-priority", "clientPriority", "must be 0 (normal) or 1 (below normal), got %d", c.ClientPriority)
	}
	if c.ClientCap < 0 || c.ClientCap > config.MaxMPSClientCap {
		bad("mps-client-cap", "clientCap", "must be 0..%d, got %d", config.MaxMPSClientCap, c.ClientCap)
	}
	if !filepath.IsAbs(c.Root) {
		bad("mps-root", "root", "must be an absolute path, got %q", c.Root)
	}
	if !filepath.IsAbs(c.ContainerPipeDir) || filepath.Clean(c.ContainerPipeDir) == "/dev/shm" {
		bad("mps-container-pipe-dir", "containerPipeDir", "must be an absolute path other than /dev/shm, got %q", c.ContainerPipeDir)
	}
	if c.ControlBinary == "" {
		bad("mps-control-binary", "controlBinary", "must not be empty")
	}
	for _, d := range []struct {
		flag, field string
		v           time.Duration
	}{
		{"mps-health-interval", "healthInterval", c.HealthInterval},
		{"mps-probe-timeout", "probeTimeout", c.ProbeTimeout},
		{"mps-max-restart-backoff", "maxRestartBackoff", c.MaxRestartBackoff},
	} {
		if d.v <= 0 {
			bad(d.flag, d.field, "must be positive, got %v", d.v)
		}
	}
	return errs
}
