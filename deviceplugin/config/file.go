package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/deviceplugin/cdi"
	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

// The config file's type.
const (
	ConfigAPIVersion = "gpuslice.io/v1alpha1"
	ConfigKind       = "DevicePluginConfig"
)

// PercentMax bounds every percentage knob.
const PercentMax = 100

// FileConfig is the device plugin's config file (--config), one YAML or
// JSON document of apiVersion gpuslice.io/v1alpha1, kind DevicePluginConfig.
// Every field is optional: an absent field keeps the flag's value, and a
// flag set on the command line wins over the file (app.Options.Complete).
// Field names and meanings are in docs/device-plugin.md.
type FileConfig struct {
	APIVersion         string  `json:"apiVersion"`
	Kind               string  `json:"kind"`
	SliceMiB           *int64  `json:"sliceMiB,omitempty"`
	Isolation          *string `json:"isolation,omitempty"`
	SlotsPerGPU        *int64  `json:"slotsPerGPU,omitempty"`
	DeviceListStrategy *string `json:"deviceListStrategy,omitempty"`
	CDIKind            *string `json:"cdiKind,omitempty"`
	// MetricsListenAddress is host:port of the plugin's /metrics (plain
	// HTTP); empty: no metrics server.
	MetricsListenAddress *string `json:"metricsListenAddress,omitempty"`
	MPS                  MPSFile `json:"mps"`
	// HostDevices are host character devices served as their own
	// resources (gpuslice.io/<name>), e.g. /dev/fuse as gpuslice.io/fuse;
	// package deviceplugin/hostdev.
	HostDevices []hostdev.Device `json:"hostDevices,omitempty"`
	// VGPU is the vGPU sizing of this node (isolation vgpu), decoded by
	// package vgpu's strict decoder.
	VGPU *vgpu.NodeConfig `json:"vgpu,omitempty"`
	// SysfsRoot is where sysfs is mounted (isolation vgpu), "/sys".
	SysfsRoot *string `json:"sysfsRoot,omitempty"`
	// CDIDir is where the spec of the vGPU instances is written
	// (isolation vgpu), "/var/run/cdi".
	CDIDir *string `json:"cdiDir,omitempty"`
	// VGPURescanInterval is how often sysfs is rescanned for vanished
	// instances (isolation vgpu), a Go duration.
	VGPURescanInterval *string `json:"vgpuRescanInterval,omitempty"`
}

// MPSFile is the mps section: the MPS daemons' settings (isolation mps).
type MPSFile struct {
	Root                          *string `json:"root,omitempty"`
	ControlBinary                 *string `json:"controlBinary,omitempty"`
	ContainerPipeDir              *string `json:"containerPipeDir,omitempty"`
	Scope                         *string `json:"scope,omitempty"`
	ClientCap                     *int64  `json:"clientCap,omitempty"`
	DefaultActiveThreadPercentage *int    `json:"defaultActiveThreadPercentage,omitempty"`
	MaxClientMemoryPercent        *int    `json:"maxClientMemoryPercent,omitempty"`
	MaxClientThreadPercentage     *int    `json:"maxClientThreadPercentage,omitempty"`
	DevShm                        *string `json:"devShm,omitempty"`
	MultiUserServer               *bool   `json:"multiUserServer,omitempty"`
	// Version is the MPS protocol: 2 (legacy MPS, the default) or 3 (MPS
	// v3: a namespace per container; needs a node that supports it).
	Version           *int  `json:"version,omitempty"`
	ReadOnlyPipeMount *bool `json:"readOnlyPipeMount,omitempty"`
	// ClientPriority (MPS v3) is every namespace's client_priority: 0
	// (normal) or 1 (below normal).
	ClientPriority *int `json:"clientPriority,omitempty"`
	// HardLimit (MPS v3) is how a container's share becomes the hard
	// memory limit of its cgroup: "nvml", "dmem-file" or "off".
	HardLimit *string `json:"hardLimit,omitempty"`
	// The durations are Go duration strings ("10s", "5m"), parsed by
	// validate so that a bad one is named.
	HealthInterval    *string `json:"healthInterval,omitempty"`
	ProbeTimeout      *string `json:"probeTimeout,omitempty"`
	MaxRestartBackoff *string `json:"maxRestartBackoff,omitempty"`
}

// fileEnvelope is FileConfig as decoded: its own vgpu field is shallower
// than FileConfig's, so it wins, and the section stays raw for package
// vgpu's own strict decoder.
type fileEnvelope struct {
	FileConfig
	VGPU json.RawMessage `json:"vgpu,omitempty"`
}

// DecodeConfigFile decodes a device plugin config file from YAML or JSON
// strictly: an unknown, duplicated or miscased field, a value of the wrong
// type, a missing or wrong apiVersion or kind, and a value out of range are
// errors that name the field ("mps.maxClientMemoryPercent: must be 1..100,
// got 150"). It applies no defaults: absent fields stay nil.
func DecodeConfigFile(data []byte) (*FileConfig, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, errors.New("empty document: want apiVersion " + ConfigAPIVersion + ", kind " + ConfigKind)
	}
	var env fileEnvelope
	strict, err := kjson.UnmarshalStrict(js, &env)
	if err != nil {
		return nil, typeError(err)
	}
	if len(strict) > 0 {
		return nil, strictError(strict[0])
	}
	if env.APIVersion != ConfigAPIVersion {
		return nil, fmt.Errorf("apiVersion: want %q, got %q", ConfigAPIVersion, env.APIVersion)
	}
	if env.Kind != ConfigKind {
		return nil, fmt.Errorf("kind: want %q, got %q", ConfigKind, env.Kind)
	}
	fc := &env.FileConfig
	if len(env.VGPU) > 0 && !bytes.Equal(env.VGPU, []byte("null")) {
		nc, err := vgpu.DecodeNodeConfig(env.VGPU)
		if err != nil {
			return nil, fmt.Errorf("vgpu: %w", err)
		}
		fc.VGPU = &nc
	}
	if err := fc.validate(); err != nil {
		return nil, err
	}
	return fc, nil
}

// decodeTypeErr is the decoder's wrong-type message.
var decodeTypeErr = regexp.MustCompile(`^json: cannot unmarshal (\w+)(?: \S+)? into Go (?:struct field \w+\.(\S+)|value) of type (\S+)$`)

// typeError rewrites the decoder's wrong-type error to name the field
// by its path; other errors (a duration that does not parse) pass.
func typeError(err error) error {
	m := decodeTypeErr.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("decode: %w", err)
	}
	if m[2] == "" {
		return fmt.Errorf("the document must be a mapping, got %s", m[1])
	}
	return fmt.Errorf("%s: want %s, got %s", m[2], typeName(m[3]), m[1])
}

// strictError rewrites `unknown field "mps.x"` as `mps.x: unknown field`.
func strictError(err error) error {
	msg := err.Error()
	for _, what := range []string{"unknown field", "duplicate field"} {
		if name, ok := strings.CutPrefix(msg, what+" "); ok {
			return fmt.Errorf("%s: %s", strings.Trim(name, `"`), what)
		}
	}
	return err
}

// typeName says a Go type as a config author would.
func typeName(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "int", "int64":
		return "an integer"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	default:
		if strings.HasPrefix(goType, "config.") {
			return "a mapping"
		}
		return goType
	}
}

// validate checks the ranges and enums of the fields the file sets.
func (fc *FileConfig) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if v := fc.SliceMiB; v != nil && *v < api.MinSliceMiB {
		bad("sliceMiB", "must be at least %d, got %d", api.MinSliceMiB, *v)
	}
	if v := fc.Isolation; v != nil && !slices.Contains(isolationModes(), *v) {
		bad("isolation", "must be one of %v, got %q", isolationModes(), *v)
	}
	if v := fc.SlotsPerGPU; v != nil && *v <= 0 {
		bad("slotsPerGPU", "must be positive, got %d", *v)
	}
	if v := fc.DeviceListStrategy; v != nil && !deviceplugin.Strategy(*v).Known() {
		bad("deviceListStrategy", "must be one of %v, got %q", deviceplugin.Strategies(), *v)
	}
	if v := fc.CDIKind; v != nil {
		if err := cdi.ValidateKind(*v); err != nil {
			bad("cdiKind", "%v", err)
		}
	}
	if err := hostdev.ValidateAll(fc.HostDevices); err != nil {
		errs = append(errs, err)
	}
	if v := fc.MetricsListenAddress; v != nil && *v != "" {
		if _, _, err := net.SplitHostPort(*v); err != nil {
			bad("metricsListenAddress", "must be host:port, got %q", *v)
		}
	}
	absolute := func(field, p string) {
		if !filepath.IsAbs(p) {
			bad(field, "must be an absolute path, got %q", p)
		}
	}
	eachSet(absolute, named("sysfsRoot", fc.SysfsRoot), named("cdiDir", fc.CDIDir))
	if v := fc.VGPURescanInterval; v != nil {
		if d, err := time.ParseDuration(*v); err != nil || d <= 0 {
			bad("vgpuRescanInterval", "must be a positive duration such as \"30s\", got %q", *v)
		}
	}
	m := fc.MPS
	eachSet(absolute, named("mps.root", m.Root), named("mps.containerPipeDir", m.ContainerPipeDir))
	if m.ContainerPipeDir != nil && filepath.Clean(*m.ContainerPipeDir) == "/dev/shm" {
		bad("mps.containerPipeDir", "must not be /dev/shm")
	}
	if v := m.ControlBinary; v != nil && *v == "" {
		bad("mps.controlBinary", "must not be empty")
	}
	if v := m.Scope; v != nil && mps.Scope(*v) != mps.ScopeGPU && mps.Scope(*v) != mps.ScopeNode {
		bad("mps.scope", "must be %q or %q, got %q", mps.ScopeGPU, mps.ScopeNode, *v)
	}
	if v := m.ClientCap; v != nil && (*v < 0 || *v > MaxMPSClientCap) {
		bad("mps.clientCap", "must be 0..%d (0: the hardware default), got %d", MaxMPSClientCap, *v)
	}
	eachSet(func(field string, v int) {
		if v < 1 || v > PercentMax {
			bad(field, "must be 1..100, got %d", v)
		}
	}, named("mps.defaultActiveThreadPercentage", m.DefaultActiveThreadPercentage),
		named("mps.maxClientMemoryPercent", m.MaxClientMemoryPercent),
		named("mps.maxClientThreadPercentage", m.MaxClientThreadPercentage))
	if d, mx := m.DefaultActiveThreadPercentage, m.MaxClientThreadPercentage; d != nil && mx != nil && *d > *mx {
		bad("mps.defaultActiveThreadPercentage", "%d is above mps.maxClientThreadPercentage %d, which the daemon enforces", *d, *mx)
	}
	if v := m.Version; v != nil && *v != mps.VersionLegacy && *v != mps.VersionV3 {
		bad("mps.version", "must be %d (legacy MPS) or %d (MPS v3), got %d", mps.VersionLegacy, mps.VersionV3, *v)
	}
	if v := m.DevShm; v != nil && mps.ShmMode(*v) != mps.ShmPerDaemon && mps.ShmMode(*v) != mps.ShmNone {
		bad("mps.devShm", "must be %q or %q, got %q", mps.ShmPerDaemon, mps.ShmNone, *v)
	}
	eachSet(func(field, v string) {
		if d, err := time.ParseDuration(v); err != nil {
			bad(field, "must be a duration such as \"10s\", got %q", v)
		} else if d <= 0 {
			bad(field, "must be positive, got %q", v)
		}
	}, named("mps.healthInterval", m.HealthInterval), named("mps.probeTimeout", m.ProbeTimeout),
		named("mps.maxRestartBackoff", m.MaxRestartBackoff))
	return errors.Join(errs...)
}

// field is a config field's name and value; v is nil when the file does
// not set it.
type field[T any] struct {
	name string
	v    *T
}

func named[T any](name string, v *T) field[T] { return field[T]{name, v} }

// eachSet calls check on the value of each field the file sets, in order.
func eachSet[T any](check func(name string, v T), fields ...field[T]) {
	for _, f := range fields {
		if f.v != nil {
			check(f.name, *f.v)
		}
	}
}

// MaxMPSClientCap is the most MPS clients per GPU a driver accepts.
const MaxMPSClientCap = 60

func isolationModes() []string {
	return []string{string(api.IsolationNone), string(api.IsolationMPS), string(api.IsolationVGPU)}
}
