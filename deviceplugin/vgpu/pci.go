package vgpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// Sysfs locations this package reads and writes, relative to the root.
const (
	pciDevices   = "bus/pci/devices"
	pciProbe     = "bus/pci/drivers_probe"
	mdevDevices  = "bus/mdev/devices"
	iommuGroups  = "kernel/iommu_groups"
	nvidiaVendor = 0x10de
	// Class codes: 0x03xxxx display controllers (GPUs), 0x0604xx PCI bridges.
	classDisplay = 0x03
	classBridge  = 0x0604
)

var (
	bdfRE  = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// ValidBDF reports whether s is a full, lower-case PCI address
// ("0000:41:00.0").
func ValidBDF(s string) bool { return bdfRE.MatchString(s) }

// ValidUUID reports whether s is a lower-case UUID.
func ValidUUID(s string) bool { return uuidRE.MatchString(s) }

// devPath is bus/pci/devices/<bdf>[/rest...]. Callers pass an address that
// ValidBDF accepted (read from sysfs and checked, or checked at an exported
// entry point) and constant names.
func devPath(bdf string, rest ...string) string {
	return strings.Join(append([]string{pciDevices, bdf}, rest...), "/")
}

// checkBDF is the entry-point check for a PCI address.
func checkBDF(bdf string) error {
	if !ValidBDF(bdf) {
		return fmt.Errorf("%q is not a PCI address (want the form 0000:41:00.0)", bdf)
	}
	return nil
}

// readHex reads an attribute such as vendor ("0x10de").
func readHex(f sysfs.FS, p string) (uint64, error) {
	s, err := sysfs.ReadString(f, p)
	if err != nil {
		return 0, err
	}
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" {
		return 0, fmt.Errorf("%s: %q is not a hex number", p, s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a hex number", p, s)
	}
	return v, nil
}

// readCount reads a non-negative decimal attribute.
func readCount(f sysfs.FS, p string) (int, error) {
	s, err := sysfs.ReadString(f, p)
	if err != nil {
		return 0, err
	}
	n, err := parseCount(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}

// iommuGroup returns the group of the device at dir ("" when it has none:
// the IOMMU is off), checking that the link names a number.
func iommuGroup(f sysfs.FS, dir string) (string, error) {
	g, ok, err := sysfs.LinkBase(f, dir+"/iommu_group")
	if err != nil || !ok {
		return "", err
	}
	if !isDigits(g) {
		return "", fmt.Errorf("%s/iommu_group: group %q is not a number", dir, g)
	}
	return g, nil
}

// driver returns the driver bound to the PCI device at dir, "" for none.
func driver(f sysfs.FS, dir string) (string, error) {
	d, _, err := sysfs.LinkBase(f, dir+"/driver")
	return d, err
}

// linkedBDF reads a link whose target ends in a PCI address (physfn,
// virtfnN) and checks the address.
func linkedBDF(f sysfs.FS, p string) (string, bool, error) {
	b, ok, err := sysfs.LinkBase(f, p)
	if err != nil || !ok {
		return "", ok, err
	}
	if !ValidBDF(b) {
		return "", false, fmt.Errorf("%s: target %q is not a PCI address", p, b)
	}
	return b, true, nil
}
