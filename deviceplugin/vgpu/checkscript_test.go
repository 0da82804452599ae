package vgpu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
	"github.com/gpuslice/gpuslice/internal/scripttest"
)

// runCheckScript runs hack/gpu-check-vgpu.sh against a fake tree: it reads
// the same layout the Go discovery reads. Its --create path can only fail
// here (a plain directory does not create mdevs), which checks that it
// notices.
func runCheckScript(t *testing.T, f *sysfs.Fake, args ...string) (string, int) {
	t.Helper()
	dev := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dev, "vfio"), 0o755))
	must(t, os.WriteFile(filepath.Join(dev, "vfio", "7"), nil, 0o644))
	return scripttest.Bash(t, nil, append([]string{"../../hack/gpu-check-vgpu.sh", "--sysfs-root", f.Dir(), "--dev-root", dev}, args...)...)
}

func TestCheckScriptListsWhatDiscoveryReads(t *testing.T) {
	f := newNode(t)
	createMdevs(t, f, "nvidia-222", 1, 1)
	must(t, SetVFType(f, sriovVFs[1], 557))
	out, code := runCheckScript(t, f)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"GPU 0000:41:00.0 device 0x1eb8 driver nvidia iommu_group 101",
		"nvidia-222     GRID T4-4Q             available 3   api vfio-pci  framebuffer_mib 4096",
		"virtfn1 0000:81:00.5 iommu_group 104 current_vgpu_type 557",
		"557   : NVIDIA L40-4Q",
		"passthrough: on vfio-pci, ",
		"mdev " + uuidN(1) + " parent 0000:41:00.0 type nvidia-222 (GRID T4-4Q) iommu_group 107",
		"vGPU: OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0000:00:1f.0") {
		t.Errorf("listed a device that is not NVIDIA's:\n%s", out)
	}
}

func TestCheckScriptFails(t *testing.T) {
	f := newNode(t)
	must(t, f.SetFile("bus/pci/devices/"+mdevGPU+"/mdev_supported_types/nvidia-223/available_instances", "four"))
	if out, code := runCheckScript(t, f); code != 1 || !strings.Contains(out, "available_instances is not a number: 'four'") {
		t.Errorf("malformed tree: exit %d, want 1:\n%s", code, out)
	}

	f = newNode(t)
	if out, code := runCheckScript(t, f, "--create"); code != 1 || !strings.Contains(out, "did not appear") {
		t.Errorf("--create on a tree that creates nothing: exit %d, want 1:\n%s", code, out)
	}

	empty, err := sysfs.NewFake(t.TempDir())
	must(t, err)
	if out, code := runCheckScript(t, empty); code != 2 {
		t.Errorf("no GPUs: exit %d, want 2:\n%s", code, out)
	}
}
