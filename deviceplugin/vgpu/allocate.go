package vgpu

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// KubeVirt's environment prefixes: virt-launcher reads an mdev's UUID from
// MDEV_PCI_RESOURCE_<name> and a PCI device's address (a passthrough GPU or
// an SR-IOV vGPU VF, both plain VFIO PCI devices to it) from
// PCI_RESOURCE_<name>, a comma-separated list when a VM has several.
const (
	EnvPrefixMdev = "MDEV_PCI_RESOURCE"
	EnvPrefixPCI  = "PCI_RESOURCE"
)

// VFIO device nodes.
const (
	VFIOContainerDevice = "/dev/vfio/vfio"
	vfioDir             = "/dev/vfio/"
	vfioPermissions     = "mrw"
)

// EnvVarName is KubeVirt's name for a resource's variable: the resource
// name upper-cased with "/" and "." replaced by "_", after prefix and "_"
// (KubeVirt's ResourceNameToEnvVar; it leaves "-" as it is).
func EnvVarName(prefix, resourceName string) string {
	v := strings.ToUpper(resourceName)
	v = strings.ReplaceAll(v, "/", "_")
	v = strings.ReplaceAll(v, ".", "_")
	return prefix + "_" + v
}

// VFIODeviceNodes returns /dev/vfio/vfio and /dev/vfio/<group> for each
// group (once each, in the order given).
func VFIODeviceNodes(groups ...string) ([]device.DeviceNode, error) {
	out := []device.DeviceNode{{ContainerPath: VFIOContainerDevice, HostPath: VFIOContainerDevice, Permissions: vfioPermissions}}
	var seen []string
	for _, g := range groups {
		if !isDigits(g) {
			return nil, fmt.Errorf("IOMMU group %q is not a number", g)
		}
		if slices.Contains(seen, g) {
			continue
		}
		seen = append(seen, g)
		out = append(out, device.DeviceNode{ContainerPath: vfioDir + g, HostPath: vfioDir + g, Permissions: vfioPermissions})
	}
	return out, nil
}

// AllocateEdits returns the container edits for devs allocated under
// resourceName, exclusive of the NVIDIA toolkit's (a VM gets its GPU
// through VFIO): the VFIO device nodes of their IOMMU groups, and KubeVirt's
// MDEV_PCI_RESOURCE_<name> (mdev UUIDs) and PCI_RESOURCE_<name> (VF and
// passthrough addresses), each a comma-separated list in the order of devs.
func AllocateEdits(resourceName string, devs []Device) (*device.ContainerEdits, error) {
	if strings.TrimSpace(resourceName) == "" {
		return nil, fmt.Errorf("allocate: empty resource name")
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("allocate %s: no devices", resourceName)
	}
	var mdevs, pcis, groups []string
	for _, d := range devs {
		switch d.Kind {
		case KindMdev:
			if !ValidUUID(d.ID) {
				return nil, fmt.Errorf("allocate %s: mdev %q is not a UUID", resourceName, d.ID)
			}
			mdevs = append(mdevs, d.ID)
		case KindVF, KindPassthrough:
			if !ValidBDF(d.ID) {
				return nil, fmt.Errorf("allocate %s: %s %q is not a PCI address", resourceName, d.Kind, d.ID)
			}
			pcis = append(pcis, d.ID)
		default:
			return nil, fmt.Errorf("allocate %s: device %q has unknown kind %q", resourceName, d.ID, d.Kind)
		}
		if d.IOMMUGroup == "" {
			return nil, fmt.Errorf("allocate %s: device %s has no IOMMU group", resourceName, d.ID)
		}
		groups = append(groups, d.IOMMUGroup)
	}
	nodes, err := VFIODeviceNodes(groups...)
	if err != nil {
		return nil, fmt.Errorf("allocate %s: %w", resourceName, err)
	}
	e := &device.ContainerEdits{Envs: map[string]string{}, Devices: nodes, Exclusive: true}
	if len(mdevs) > 0 {
		e.Envs[EnvVarName(EnvPrefixMdev, resourceName)] = strings.Join(mdevs, ",")
	}
	if len(pcis) > 0 {
		e.Envs[EnvVarName(EnvPrefixPCI, resourceName)] = strings.Join(pcis, ",")
	}
	return e, nil
}
