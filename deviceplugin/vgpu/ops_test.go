package vgpu

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

func TestCreateAndRemoveMdev(t *testing.T) {
	f := newNode(t)
	must(t, CreateMdev(f, mdevGPU, "nvidia-223", uuidN(1)))
	g := gpu(t, discover(t, f), mdevGPU)
	if len(g.Mdevs) != 1 || g.Mdevs[0].Type != "nvidia-223" || g.Mdevs[0].IOMMUGroup == "" {
		t.Fatalf("after create: mdevs %+v", g.Mdevs)
	}
	if g.MdevTypes[1].Available != 1 || g.MdevTypes[0].Available != 0 {
		t.Errorf("available after create: 4Q %d (want 0), 8Q %d (want 1)", g.MdevTypes[0].Available, g.MdevTypes[1].Available)
	}
	must(t, RemoveMdev(f, uuidN(1)))
	g = gpu(t, discover(t, f), mdevGPU)
	if len(g.Mdevs) != 0 || g.MdevTypes[0].Available != 4 {
		t.Errorf("after remove: mdevs %+v, 4Q available %d (want none, 4)", g.Mdevs, g.MdevTypes[0].Available)
	}
	if err := RemoveMdev(f, uuidN(1)); err == nil {
		t.Error("removing a removed mdev succeeded")
	}
}

func TestMdevOpsRejectBadNames(t *testing.T) {
	f := newNode(t)
	for name, err := range map[string]error{
		"bad bdf":         CreateMdev(f, "41:00.0", "nvidia-222", uuidN(1)),
		"upper-case uuid": CreateMdev(f, mdevGPU, "nvidia-222", strings.ToUpper("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")),
		"type escapes":    CreateMdev(f, mdevGPU, "../../x", uuidN(1)),
		"remove bad uuid": RemoveMdev(f, "../x"),
		"vf bad bdf":      SetVFType(f, "x", 557),
		"vf zero type":    SetVFType(f, sriovVFs[0], 0),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("refused operations wrote %v", w)
	}
}

func TestNewUUIDIsAValidV4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u, err := NewUUID()
		must(t, err)
		if !ValidUUID(u) || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) || seen[u] {
			t.Fatalf("NewUUID = %q: not a fresh v4 UUID", u)
		}
		seen[u] = true
	}
}

func TestSetAndClearVFType(t *testing.T) {
	f := newNode(t)
	must(t, SetVFType(f, sriovVFs[0], 560))
	if err := SetVFType(f, sriovVFs[1], 557); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second type on a GPU without mixed types: %v, want EINVAL", err)
	}
	g := gpu(t, discover(t, f), sriovGPU)
	if g.VFs[0].CurrentType != 560 {
		t.Errorf("VF 0 type %d, want 560", g.VFs[0].CurrentType)
	}
	must(t, ClearVFType(f, sriovVFs[0]))
	must(t, SetVFType(f, sriovVFs[1], 557))
	g = gpu(t, discover(t, f), sriovGPU)
	if g.VFs[0].CurrentType != 0 || g.VFs[1].CurrentType != 557 {
		t.Errorf("VF types %d, %d; want 0, 557", g.VFs[0].CurrentType, g.VFs[1].CurrentType)
	}
}

func TestBindVFIO(t *testing.T) {
	spareAudio := "0000:e1:00.1"
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, f *sysfs.Fake)
		inUse   fakeInUse
		wantErr string
		// bound are the devices that must end on vfio-pci.
		bound []string
	}{
		{name: "GPU alone", bound: []string{spareGPU}},
		{name: "GPU and its audio function", setup: func(t *testing.T, f *sysfs.Fake) {
			must(t, f.AddDevice(sysfs.DeviceSpec{BDF: spareAudio, Device: "0x1aef", Class: "0x040300", Driver: "snd_hda_intel", IOMMUGroup: 9}))
		}, bound: []string{spareGPU, spareAudio}},
		{name: "bridge in the group is left alone", setup: func(t *testing.T, f *sysfs.Fake) {
			must(t, f.AddDevice(sysfs.DeviceSpec{BDF: "0000:e0:00.0", Vendor: "0x1000", Class: "0x060400", Driver: "pcieport", IOMMUGroup: 9}))
		}, bound: []string{spareGPU}},
		{name: "in use", inUse: fakeInUse{spareGPU: "pid 4242 (python)"}, wantErr: "used by pid 4242"},
		{name: "audio function in use", setup: func(t *testing.T, f *sysfs.Fake) {
			must(t, f.AddDevice(sysfs.DeviceSpec{BDF: spareAudio, Class: "0x040300", Driver: "snd_hda_intel", IOMMUGroup: 9}))
		}, inUse: fakeInUse{spareAudio: "pulseaudio"}, wantErr: "used by pulseaudio"},
		{name: "checker fails", inUse: fakeInUse{spareGPU: "error"}, wantErr: "cannot tell whether"},
		{name: "another vendor's device in the group", setup: func(t *testing.T, f *sysfs.Fake) {
			must(t, f.AddDevice(sysfs.DeviceSpec{BDF: "0000:e1:00.2", Vendor: "0x15b3", Class: "0x020000", Driver: "mlx5_core", IOMMUGroup: 9}))
		}, wantErr: "not NVIDIA's"},
		{name: "no IOMMU group", setup: func(t *testing.T, f *sysfs.Fake) {
			must(t, f.RemoveFile("devices/pci0000:00/"+spareGPU+"/iommu_group"))
		}, wantErr: "no IOMMU group"},
		{name: "vfio-pci does not take it", setup: func(t *testing.T, f *sysfs.Fake) {
			f.FailWrite("bus/pci/drivers_probe", syscall.ENODEV)
		}, wantErr: "drivers_probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNode(t)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			_, ctx := ktesting.NewTestContext(t)
			err := BindVFIO(ctx, f, spareGPU, tc.inUse)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("BindVFIO: %v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "used by") && !errors.Is(err, ErrInUse) {
					t.Errorf("error %v is not ErrInUse", err)
				}
				if tc.name != "vfio-pci does not take it" {
					if w := f.Writes(); len(w) != 0 {
						t.Errorf("a refused rebind wrote %v", w)
					}
				}
				return
			}
			must(t, err)
			var got []string
			n := discover(t, f)
			for _, b := range []string{spareGPU, spareAudio, "0000:e0:00.0"} {
				if d, _, _ := sysfs.LinkBase(f, "bus/pci/devices/"+b+"/driver"); d == VFIODriver {
					got = append(got, b)
				}
			}
			if d := cmp.Diff(tc.bound, got); d != "" {
				t.Errorf("bound to vfio-pci (-want +got):\n%s", d)
			}
			if g := gpu(t, n, spareGPU); g.Driver != VFIODriver || len(g.Devices()) != 1 || g.Devices()[0].Kind != KindPassthrough {
				t.Errorf("after bind: driver %q, devices %+v", g.Driver, g.Devices())
			}
		})
	}
}

func TestBindVFIORefusesAGPUWithInstances(t *testing.T) {
	f := newNode(t)
	createMdevs(t, f, "nvidia-222", 1, 1)
	if err := BindVFIO(context.Background(), f, mdevGPU, fakeInUse{}); err == nil || !strings.Contains(err.Error(), "still has mdev") {
		t.Errorf("BindVFIO of a GPU with an mdev: %v", err)
	}
	if err := BindVFIO(context.Background(), f, sriovGPU, fakeInUse{}); err == nil || !strings.Contains(err.Error(), "virtual functions enabled") {
		t.Errorf("BindVFIO of a GPU with VFs: %v", err)
	}
}
