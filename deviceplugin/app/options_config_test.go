package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/pflag"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/hostdev"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/deviceplugin/vgpu"
)

// parse registers o's flags, parses args and completes o, as main does.
func parse(t *testing.T, o *Options, args ...string) error {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o.Complete(fs)
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const header = "apiVersion: gpuslice.io/v1alpha1\nkind: DevicePluginConfig\n"

var ignoreLogs = cmpopts.IgnoreFields(Options{}, "Logs")

func TestOptionsDefaults(t *testing.T) {
	wantMPS := mps.Config{
		Root: "/run/gpuslice/mps", ControlBinary: "nvidia-cuda-mps-control", ContainerPipeDir: "/run/gpuslice/mps",
		Scope: mps.ScopeGPU, MaxClientMemoryPercent: 100, MaxClientThreadPercentage: 100, DevShm: mps.ShmPerDaemon,
		HealthInterval: 10 * time.Second, ProbeTimeout: 5 * time.Second, MaxRestartBackoff: 5 * time.Minute,
		Version: mps.VersionLegacy,
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no config file", nil},
		{"config file that sets nothing", []string{"--config=" + writeFile(t, header+"\n")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			if err := parse(t, o, tc.args...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantMPS, o.MPS); diff != "" {
				t.Errorf("MPS defaults (-want +got):\n%s", diff)
			}
			want := NewOptions()
			want.ConfigFile = o.ConfigFile
			if diff := cmp.Diff(want, o, ignoreLogs); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if o.Plugin.SliceMiB != api.DefaultSliceMiB || o.Isolation != "none" || o.Strategy != "cdi" || o.SlotsPerGPU != 16 {
				t.Errorf("defaults: slice %d, isolation %q, strategy %q, slots %d", o.Plugin.SliceMiB, o.Isolation, o.Strategy, o.SlotsPerGPU)
			}
		})
	}
}

func TestOptionsFileAndFlags(t *testing.T) {
	example, err := filepath.Abs("../config/testdata/config-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromExample := func() *Options {
		o := NewOptions()
		o.ConfigFile = example
		o.Plugin.SliceMiB = 512
		o.Isolation = "mps"
		o.MPS.DefaultActiveThreadPercentage = 50
		o.MPS.MaxClientMemoryPercent = 50
		o.MPS.MaxClientThreadPercentage = 50
		o.VGPU = &vgpu.NodeConfig{GPUs: []vgpu.GPUConfig{
			{Select: vgpu.Selector{Model: "Tesla T4"}, Mode: vgpu.ModeVGPU, Type: "GRID T4-4Q", Instances: 4},
			{Select: vgpu.Selector{BDF: "0000:81:00.0"}, Mode: vgpu.ModePassthrough, BindVFIO: true, MemoryMiB: 81920},
		}}
		o.HostDevices = []hostdev.Device{hostdev.Fuse(32)}
		return o
	}
	v3File := writeFile(t, header+"isolation: mps\nmps:\n  version: 3\n")
	tests := []struct {
		name string
		args []string
		want func() *Options
	}{
		{"file only", []string{"--config=" + example}, fromExample},
		{"flags win", []string{
			"--config=" + example, "--slice-mib=1024", "--isolation=none", "--mps-max-client-memory-percent=25",
			"--mps-multi-user-server", "--mps-health-interval=1m", "--mps-dev-shm=none",
		}, func() *Options {
			o := fromExample()
			o.Plugin.SliceMiB = 1024
			o.Isolation = "none"
			o.MPS.MaxClientMemoryPercent = 25
			o.MPS.MultiUserServer = true
			o.MPS.HealthInterval = time.Minute
			o.MPS.DevShm = mps.ShmNone
			return o
		}},
		{"flag set to its default still wins", []string{"--config=" + example, "--mps-max-client-thread-percentage=100", "--slice-mib=256"}, func() *Options {
			o := fromExample()
			o.MPS.MaxClientThreadPercentage = 100
			o.Plugin.SliceMiB = 256
			return o
		}},
		{"vgpu", []string{"--config=" + example, "--isolation=vgpu", "--sysfs-root=/host/sys", "--cdi-dir=/run/cdi", "--vgpu-rescan-interval=5s"}, func() *Options {
			o := fromExample()
			o.Isolation = "vgpu"
			o.SysfsRoot, o.CDIDir, o.VGPURescanInterval = "/host/sys", "/run/cdi", 5*time.Second
			return o
		}},
		{"mps version from the file", []string{"--config=" + v3File}, func() *Options {
			o := NewOptions()
			o.ConfigFile = v3File
			o.Isolation = "mps"
			o.MPS.Version = mps.VersionV3
			return o
		}},
		{"mps version flag wins", []string{"--config=" + example, "--mps-version=3"}, func() *Options {
			o := fromExample()
			o.MPS.Version = mps.VersionV3
			return o
		}},
		{"flags order does not matter", []string{"--slice-mib=2048", "--config=" + example}, func() *Options {
			o := fromExample()
			o.Plugin.SliceMiB = 2048
			return o
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			if err := parse(t, o, tc.args...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want(), o, ignoreLogs); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			o.NodeName = "n"
			if err := o.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestOptionsConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// complete is the Complete error, validate Validate's; "" none.
		complete, validate string
	}{
		{"missing file", []string{"--config=/nonexistent/gpuslice.yaml"}, "read --config", ""},
		{"bad file names field and file", []string{"--config=" + writeFile(t, header+"mps:\n  maxClientMemoryPercent: 150\n")}, "mps.maxClientMemoryPercent: must be 1..100, got 150", ""},
		{"bad flag", []string{"--isolation=mps", "--mps-max-client-memory-percent=150"}, "", "--mps-max-client-memory-percent (mps.maxClientMemoryPercent): must be 1..100, got 150"},
		{"default above max across file and flag", []string{"--isolation=mps", "--mps-max-client-thread-percentage=40", "--config=" + writeFile(t, header+"mps:\n  defaultActiveThreadPercentage: 50\n")}, "", "50 is above the max client thread percentage 40"},
		{"bad dev shm flag", []string{"--isolation=mps", "--mps-dev-shm=x"}, "", "--mps-dev-shm (mps.devShm)"},
		{"bad mps version flag", []string{"--isolation=mps", "--mps-version=4"}, "", "--mps-version (mps.version): must be 2 (legacy MPS) or 3 (MPS v3), got 4"},
		{"bad mps version in file", []string{"--config=" + writeFile(t, header+"mps:\n  version: 1\n")}, "mps.version: must be 2 (legacy MPS) or 3 (MPS v3), got 1", ""},
		{"mps knobs unchecked without mps", []string{"--mps-max-client-memory-percent=150"}, "", ""},
		{"vgpu relative sysfs root", []string{"--isolation=vgpu", "--sysfs-root=sys", "--config=" + writeFile(t, header+"vgpu:\n  gpus:\n  - {select: {index: 0}, mode: passthrough}\n")}, "", "--sysfs-root (sysfsRoot): must be an absolute path"},
		{"vgpu empty section", []string{"--isolation=vgpu", "--config=" + writeFile(t, header+"vgpu:\n  gpus: []\n")}, "", "--isolation=vgpu needs the vgpu section"},
		{"vgpu unknown field", []string{"--isolation=vgpu", "--config=" + writeFile(t, header+"vgpu:\n  gpus:\n  - {select: {index: 0}, mode: passthrough, bindVfio: true}\n")}, `unknown field "gpus[0].bindVfio"`, ""},
		{"cdi without kind", []string{"--config=" + writeFile(t, header+"deviceListStrategy: cdi\n"), "--cdi-kind="}, "", "CDI kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			err := parse(t, o, append([]string{"--node-name=n"}, tc.args...)...)
			if !matches(err, tc.complete) {
				t.Fatalf("Complete: %v, want %q", err, tc.complete)
			}
			if err != nil {
				return
			}
			if err := o.Validate(); !matches(err, tc.validate) {
				t.Fatalf("Validate: %v, want %q", err, tc.validate)
			}
		})
	}
}

func matches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}

// TestFuseCount: --fuse-count replaces the config file's fuse entry, keeps
// its other host devices, and is validated.
func TestFuseCount(t *testing.T) {
	o := NewOptions()
	o.NodeName = "n"
	o.HostDevices = []hostdev.Device{hostdev.Fuse(32), {Name: "tun", Path: "/dev/net/tun", Count: 2}}
	o.FuseCount = 4
	want := []hostdev.Device{{Name: "tun", Path: "/dev/net/tun", Count: 2}, hostdev.Fuse(4)}
	if diff := cmp.Diff(want, o.hostDevices()); diff != "" {
		t.Errorf("host devices (-want +got):\n%s", diff)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	o.FuseCount = hostdev.MaxCount + 1
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--fuse-count: must be 0..1024") {
		t.Errorf("Validate = %v, want the --fuse-count bound", err)
	}
}
