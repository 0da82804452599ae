package vgpu

import (
	"fmt"
	"strconv"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// SetVFType gives the SR-IOV virtual function vf the vGPU type id (one of
// its creatable_vgpu_types) by writing it to nvidia/current_vgpu_type. The
// VF must have no type: clear it first.
func SetVFType(f sysfs.FS, vf string, id int) error {
	if err := checkBDF(vf); err != nil {
		return fmt.Errorf("set vGPU type: %w", err)
	}
	if id <= 0 {
		return fmt.Errorf("set vGPU type of %s: type ID %d is not positive (ClearVFType clears)", vf, id)
	}
	return writeVFType(f, vf, id)
}

// ClearVFType clears vf's vGPU type (writes 0 to current_vgpu_type).
func ClearVFType(f sysfs.FS, vf string) error {
	if err := checkBDF(vf); err != nil {
		return fmt.Errorf("clear vGPU type: %w", err)
	}
	return writeVFType(f, vf, 0)
}

func writeVFType(f sysfs.FS, vf string, id int) error {
	if err := f.WriteFile(devPath(vf, "nvidia", "current_vgpu_type"), []byte(strconv.Itoa(id))); err != nil {
		return fmt.Errorf("set vGPU type of VF %s to %d: %w", vf, id, err)
	}
	return nil
}
