package vgpu

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// InUseChecker says whether any process uses a PCI device. ProcInUse is the
// implementation over /proc (open /dev/nvidia<minor> files); the plugin may
// add NVML's running-process list once wired. Tests inject a fake.
type InUseChecker interface {
	// InUse reports whether the device at bdf is in use, and by what (for
	// the report).
	InUse(ctx context.Context, bdf string) (inUse bool, by string, err error)
}

// ErrInUse is returned (wrapped) when a rebind is refused because a
// device is in use.
var ErrInUse = errors.New("device in use")

// BindVFIO binds the GPU at bdf, and every other function in its IOMMU
// group, to vfio-pci, as VFIO needs for a whole group. It refuses, without
// changing anything, when the GPU has no IOMMU group, when the group holds a
// device that is not NVIDIA's (a PCI bridge excepted), when the GPU still
// has vGPU instances or enabled VFs, or when inUse says any device of the
// group is in use. Per device it writes vfio-pci to driver_override, unbinds
// the current driver and asks drivers_probe to bind, then checks the result.
func BindVFIO(ctx context.Context, f sysfs.FS, bdf string, inUse InUseChecker) error {
	if err := checkBDF(bdf); err != nil {
		return fmt.Errorf("bind to vfio-pci: %w", err)
	}
	fail := func(err error) error { return fmt.Errorf("bind %s to vfio-pci: %w", bdf, err) }
	group, err := iommuGroup(f, devPath(bdf))
	if err != nil {
		return fail(err)
	}
	if group == "" {
		return fail(errors.New("the GPU has no IOMMU group (is the IOMMU enabled: intel_iommu=on / amd_iommu=on?)"))
	}
	if n, err := readCount(f, devPath(bdf, "sriov_numvfs")); err == nil && n > 0 {
		return fail(fmt.Errorf("the GPU has %d virtual functions enabled; disable them first", n))
	}
	if ms, err := f.ReadDir(devPath(bdf)); err == nil {
		for _, m := range ms {
			if ValidUUID(m) {
				return fail(fmt.Errorf("the GPU still has mdev %s", m))
			}
		}
	}
	members, err := f.ReadDir(iommuGroups + "/" + group + "/devices")
	if err != nil {
		return fail(err)
	}
	var rebind []string
	for _, m := range members {
		need, err := needsVFIO(f, m)
		if err != nil {
			return fail(fmt.Errorf("IOMMU group %s: %w", group, err))
		}
		if !need {
			continue
		}
		busy, by, err := inUse.InUse(ctx, m)
		if err != nil {
			return fail(fmt.Errorf("cannot tell whether %s is in use: %w", m, err))
		}
		if busy {
			return fail(fmt.Errorf("%s is used by %s: %w", m, by, ErrInUse))
		}
		rebind = append(rebind, m)
	}
	log := klog.FromContext(ctx)
	for _, m := range rebind {
		if err := rebindToVFIO(f, m); err != nil {
			return fail(err)
		}
		log.Info("Bound PCI device to vfio-pci", "device", m, "iommuGroup", group)
	}
	return nil
}

// needsVFIO says whether group member m must be rebound: it is an NVIDIA
// function not on vfio-pci. A bridge needs nothing; any other vendor's
// device is an error, since taking it from its driver is not ours to do.
func needsVFIO(f sysfs.FS, m string) (bool, error) {
	if err := checkBDF(m); err != nil {
		return false, err
	}
	class, err := readHex(f, devPath(m, "class"))
	if err != nil {
		return false, err
	}
	if class>>8 == classBridge {
		return false, nil
	}
	vendor, err := readHex(f, devPath(m, "vendor"))
	if err != nil {
		return false, err
	}
	if vendor != nvidiaVendor {
		return false, fmt.Errorf("%s (vendor 0x%04x) shares the group; not rebinding a device that is not NVIDIA's", m, vendor)
	}
	drv, err := driver(f, devPath(m))
	return drv != VFIODriver, err
}

func rebindToVFIO(f sysfs.FS, m string) error {
	if err := f.WriteFile(devPath(m, "driver_override"), []byte(VFIODriver)); err != nil {
		return err
	}
	drv, err := driver(f, devPath(m))
	if err != nil {
		return err
	}
	if drv != "" {
		if err := f.WriteFile(devPath(m, "driver", "unbind"), []byte(m)); err != nil {
			return err
		}
	}
	if err := f.WriteFile(pciProbe, []byte(m)); err != nil {
		return err
	}
	drv, err = driver(f, devPath(m))
	if err != nil {
		return err
	}
	if drv != VFIODriver {
		return fmt.Errorf("%s is bound to %q after probing, not vfio-pci (is the vfio-pci module loaded?)", m, drv)
	}
	return nil
}
