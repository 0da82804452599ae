package vgpu

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// The test node: one GPU of each flavour, a spare GPU, and a device of
// another vendor.
const (
	mdevGPU  = "0000:41:00.0" // Tesla T4, vfio-mdev
	sriovGPU = "0000:81:00.0" // L40, SR-IOV
	ptGPU    = "0000:c1:00.0" // on vfio-pci, with its audio function
	ptAudio  = "0000:c1:00.1"
	spareGPU = "0000:e1:00.0" // on nvidia, no vGPU
	intelLPC = "0000:00:1f.0"
	t4Desc4Q = "num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=5120x2880, max_instance=4"
	t4Desc8Q = "num_heads=4, frl_config=60, framebuffer=8192M, max_resolution=5120x2880, max_instance=2"
)

// sriovVFs are the L40's VFs, as EnableSRIOV numbers them.
var sriovVFs = []string{"0000:81:00.4", "0000:81:00.5", "0000:81:00.6", "0000:81:00.7"}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newNode builds the test node's sysfs.
func newNode(t testing.TB) *sysfs.Fake {
	t.Helper()
	f, err := sysfs.NewFake(t.TempDir())
	must(t, err)
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: intelLPC, Vendor: "0x8086", Device: "0xa1c1", Class: "0x060100"}))
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: mdevGPU, Driver: "nvidia", NUMANode: 0}))
	must(t, f.AddMdevType(mdevGPU, sysfs.MdevTypeSpec{ID: "nvidia-222", Name: "GRID T4-4Q", Description: t4Desc4Q, Max: 4}))
	must(t, f.AddMdevType(mdevGPU, sysfs.MdevTypeSpec{ID: "nvidia-223", Name: "GRID T4-8Q", Description: t4Desc8Q, Max: 2}))
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: sriovGPU, Device: "0x26b5", Driver: "nvidia", NUMANode: 1}))
	vfs, err := f.EnableSRIOV(sriovGPU, 4, []sysfs.VGPUTypeSpec{
		{ID: 557, Name: "NVIDIA L40-4Q", Max: 4},
		{ID: 560, Name: "NVIDIA L40-12Q", Max: 2},
	})
	must(t, err)
	if strings.Join(vfs, " ") != strings.Join(sriovVFs, " ") {
		t.Fatalf("VFs %v, want %v", vfs, sriovVFs)
	}
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: ptGPU, Device: "0x2236", Driver: VFIODriver, IOMMUGroup: 7, NUMANode: 1}))
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: ptAudio, Device: "0x1aef", Class: "0x040300", Driver: VFIODriver, IOMMUGroup: 7, NUMANode: 1}))
	must(t, f.AddDevice(sysfs.DeviceSpec{BDF: spareGPU, Device: "0x2236", Driver: "nvidia", IOMMUGroup: 9}))
	return f
}

// seqUUIDs returns a NewUUID that counts.
func seqUUIDs() func() (string, error) {
	n := 0
	return func() (string, error) {
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n), nil
	}
}

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// fakeInUse says which devices are in use.
type fakeInUse map[string]string

func (f fakeInUse) InUse(_ context.Context, bdf string) (bool, string, error) {
	by, ok := f[bdf]
	if by == "error" {
		return false, "", fmt.Errorf("cannot look at processes")
	}
	return ok, by, nil
}

func discover(t testing.TB, f sysfs.FS) *Node {
	t.Helper()
	n, err := Discover(context.Background(), f)
	must(t, err)
	return n
}

func gpu(t testing.TB, n *Node, bdf string) *GPU {
	t.Helper()
	g, ok := n.GPU(bdf)
	if !ok {
		t.Fatalf("GPU %s not discovered", bdf)
	}
	return g
}

// createMdevs creates mdevs of typ on mdevGPU named uuidN(first...).
func createMdevs(t testing.TB, f sysfs.FS, typ string, first, count int) {
	t.Helper()
	for i := range count {
		must(t, CreateMdev(f, mdevGPU, typ, uuidN(first+i)))
	}
}
