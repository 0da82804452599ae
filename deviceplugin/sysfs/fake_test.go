package sysfs

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	gpu0 = "0000:41:00.0"
	u1   = "11111111-2222-3333-4444-555555555555"
	u2   = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

func newFake(t *testing.T) *Fake {
	t.Helper()
	f, err := NewFake(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, f FS, p string) string {
	t.Helper()
	s, err := ReadString(f, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFakeMdevCreateRemove(t *testing.T) {
	f := newFake(t)
	must(t, f.AddDevice(DeviceSpec{BDF: gpu0, Driver: "nvidia"}))
	types := "bus/pci/devices/" + gpu0 + "/mdev_supported_types/"
	must(t, f.AddMdevType(gpu0, MdevTypeSpec{ID: "nvidia-222", Name: "GRID T4-4Q", Max: 4}))
	must(t, f.AddMdevType(gpu0, MdevTypeSpec{ID: "nvidia-223", Name: "GRID T4-8Q", Max: 2}))

	must(t, f.WriteFile(types+"nvidia-222/create", []byte(u1)))
	if got := read(t, f, types+"nvidia-222/available_instances"); got != "3" {
		t.Errorf("available_instances of the created type = %s, want 3", got)
	}
	if got := read(t, f, types+"nvidia-223/available_instances"); got != "0" {
		t.Errorf("available_instances of another type = %s, want 0 (one type per GPU)", got)
	}
	if b, ok, err := LinkBase(f, "bus/mdev/devices/"+u1+"/mdev_type"); err != nil || !ok || b != "nvidia-222" {
		t.Errorf("mdev_type link = %q, %v, %v", b, ok, err)
	}
	if b, ok, err := LinkBase(f, "bus/mdev/devices/"+u1+"/iommu_group"); err != nil || !ok || b == "" {
		t.Errorf("iommu_group link = %q, %v, %v", b, ok, err)
	}
	if err := f.WriteFile(types+"nvidia-222/create", []byte(u1)); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second create with the same UUID: %v, want EEXIST", err)
	}
	if err := f.WriteFile(types+"nvidia-222/create", []byte("not-a-uuid")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("create with a bad UUID: %v, want EINVAL", err)
	}
	if err := f.WriteFile(types+"nvidia-223/create", []byte(u2)); !errors.Is(err, syscall.EUSERS) {
		t.Errorf("create of a second type: %v, want EUSERS", err)
	}

	must(t, f.WriteFile("bus/mdev/devices/"+u1+"/remove", []byte("1\n")))
	if ok, _ := f.Exists("bus/mdev/devices/" + u1); ok {
		t.Error("mdev still present after remove")
	}
	if got := read(t, f, types+"nvidia-223/available_instances"); got != "2" {
		t.Errorf("available_instances after remove = %s, want 2", got)
	}
}

func TestFakeSRIOVTypes(t *testing.T) {
	f := newFake(t)
	must(t, f.AddDevice(DeviceSpec{BDF: gpu0, Device: "0x26b5", Driver: "nvidia"}))
	vfs, err := f.EnableSRIOV(gpu0, 3, []VGPUTypeSpec{{ID: 557, Name: "NVIDIA L40-4Q", Max: 2}, {ID: 558, Name: "NVIDIA L40-8Q", Max: 1}})
	must(t, err)
	if d := cmp.Diff([]string{"0000:41:00.4", "0000:41:00.5", "0000:41:00.6"}, vfs); d != "" {
		t.Fatalf("VFs (-want +got):\n%s", d)
	}
	cur := func(vf string) string { return "bus/pci/devices/" + vf + "/nvidia/current_vgpu_type" }
	must(t, f.WriteFile(cur(vfs[0]), []byte("557")))
	if got := read(t, f, "bus/pci/devices/"+vfs[1]+"/nvidia/creatable_vgpu_types"); strings.Contains(got, "558") {
		t.Errorf("other VF still offers another type:\n%s", got)
	}
	if err := f.WriteFile(cur(vfs[0]), []byte("557")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("setting a type on a VF that has one: %v, want EBUSY", err)
	}
	if err := f.WriteFile(cur(vfs[1]), []byte("558")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("setting a type not creatable: %v, want EINVAL", err)
	}
	must(t, f.WriteFile(cur(vfs[1]), []byte("557")))
	if got := read(t, f, "bus/pci/devices/"+vfs[2]+"/nvidia/creatable_vgpu_types"); got != "ID    : vGPU Name" {
		t.Errorf("creatable types with the type's VFs used up = %q, want only the header", got)
	}
	must(t, f.WriteFile(cur(vfs[0]), []byte("0")))
	must(t, f.WriteFile(cur(vfs[1]), []byte("0")))
	must(t, f.WriteFile(cur(vfs[2]), []byte("558")))
	if b, ok, _ := LinkBase(f, "bus/pci/devices/"+vfs[2]+"/physfn"); !ok || b != gpu0 {
		t.Errorf("physfn = %q", b)
	}
}

func TestFakeRebindAndRemoveDevice(t *testing.T) {
	f := newFake(t)
	must(t, f.AddDevice(DeviceSpec{BDF: gpu0, Driver: "nvidia"}))
	d := "bus/pci/devices/" + gpu0
	must(t, f.WriteFile(d+"/driver_override", []byte("vfio-pci")))
	must(t, f.WriteFile(d+"/driver/unbind", []byte(gpu0)))
	if _, ok, _ := LinkBase(f, d+"/driver"); ok {
		t.Error("driver link present after unbind")
	}
	must(t, f.WriteFile("bus/pci/drivers_probe", []byte(gpu0)))
	if b, _, _ := LinkBase(f, d+"/driver"); b != "vfio-pci" {
		t.Errorf("driver after probe = %q, want vfio-pci", b)
	}
	must(t, f.AddMdevType(gpu0, MdevTypeSpec{ID: "nvidia-222", Name: "GRID T4-4Q", Max: 4}))
	must(t, f.WriteFile(d+"/mdev_supported_types/nvidia-222/create", []byte(u1)))
	must(t, f.RemoveDevice(gpu0))
	for _, p := range []string{d, "bus/mdev/devices/" + u1} {
		if ok, err := f.Exists(p); err != nil || ok {
			t.Errorf("%s exists after the GPU was removed", p)
		}
	}
}

func TestFakeInjectsFaults(t *testing.T) {
	f := newFake(t)
	must(t, f.AddDevice(DeviceSpec{BDF: gpu0, Driver: "nvidia"}))
	p := "bus/pci/devices/" + gpu0 + "/vendor"
	must(t, f.SetFile(p, "garbage"))
	if got := read(t, f, p); got != "garbage" {
		t.Errorf("after SetFile: %q", got)
	}
	f.FailRead(p, syscall.EIO)
	if _, err := f.ReadFile(p); !errors.Is(err, syscall.EIO) {
		t.Errorf("ReadFile with injected error: %v, want EIO", err)
	}
	f.FailRead(p, nil)
	f.FailWrite(p, syscall.EPERM)
	if err := f.WriteFile(p, []byte("x")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("WriteFile with injected error: %v, want EPERM", err)
	}
	if d := cmp.Diff([]Write{{Path: p, Data: "x"}}, f.Writes()); d != "" {
		t.Errorf("Writes (-want +got):\n%s", d)
	}
}
