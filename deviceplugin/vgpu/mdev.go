package vgpu

import (
	"crypto/rand"
	"fmt"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// CreateMdev creates an mdev of type typeID on the GPU at bdf by writing its
// UUID to mdev_supported_types/<type>/create.
func CreateMdev(f sysfs.FS, bdf, typeID, uuid string) error {
	if err := checkBDF(bdf); err != nil {
		return fmt.Errorf("create mdev: %w", err)
	}
	if !ValidUUID(uuid) {
		return fmt.Errorf("create mdev: %q is not a lower-case UUID", uuid)
	}
	if _, err := sysfs.Join(typeID); err != nil {
		return fmt.Errorf("create mdev: type: %w", err)
	}
	if err := f.WriteFile(devPath(bdf, "mdev_supported_types", typeID, "create"), []byte(uuid)); err != nil {
		return fmt.Errorf("create mdev %s of type %s on %s: %w", uuid, typeID, bdf, err)
	}
	return nil
}

// RemoveMdev removes the mdev uuid through bus/mdev/devices/<uuid>/remove.
// The kernel refuses while a VM has the device open.
func RemoveMdev(f sysfs.FS, uuid string) error {
	if !ValidUUID(uuid) {
		return fmt.Errorf("remove mdev: %q is not a lower-case UUID", uuid)
	}
	if err := f.WriteFile(mdevDevices+"/"+uuid+"/remove", []byte("1")); err != nil {
		return fmt.Errorf("remove mdev %s: %w", uuid, err)
	}
	return nil
}

// NewUUID returns a random (version 4) UUID in the lower-case form the mdev
// core prints.
func NewUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
