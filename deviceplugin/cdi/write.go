package cdi

import (
	"fmt"
	"os"
	"slices"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// VFIOKind is the CDI kind of the spec the plugin writes for the VFIO
// instances of its vgpu mode (Kata's cold plug reads the device nodes).
const VFIOKind = "gpuslice.io/vgpu"

// Device is one device of a spec the plugin writes: its name (unqualified)
// and its device nodes.
type Device struct {
	Name  string
	Nodes []device.DeviceNode
}

// SpecName returns the file name (without extension) of the plugin's spec
// of kind in a spec directory.
func SpecName(kind string) string {
	vendor, class := parser.ParseQualifier(kind)
	return cdiapi.GenerateSpecName(vendor, class)
}

// WriteSpec writes (atomically replaces) the CDI spec of kind in dir with
// devs, one CDI device each, and creates dir when missing. A spec without
// devices is removed instead, since CDI rejects an empty one.
func WriteSpec(dir, kind string, devs []Device) error {
	if err := ValidateKind(kind); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("CDI spec directory: %w", err)
	}
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dir), cdiapi.WithAutoRefresh(false))
	if cache == nil {
		return fmt.Errorf("CDI cache of %s: %w", dir, err)
	}
	name := SpecName(kind)
	if len(devs) == 0 {
		if err := cache.RemoveSpec(name); err != nil {
			return fmt.Errorf("remove CDI spec %s in %s: %w", name, dir, err)
		}
		return nil
	}
	spec := &cdispec.Spec{Version: cdispec.CurrentVersion, Kind: kind}
	for _, d := range devs {
		if err := parser.ValidateDeviceName(d.Name); err != nil {
			return fmt.Errorf("CDI device name %q: %w", d.Name, err)
		}
		cd := cdispec.Device{Name: d.Name}
		for _, n := range d.Nodes {
			cd.ContainerEdits.DeviceNodes = append(cd.ContainerEdits.DeviceNodes, &cdispec.DeviceNode{
				Path: n.ContainerPath, HostPath: n.HostPath, Permissions: n.Permissions, Type: "c"})
		}
		spec.Devices = append(spec.Devices, cd)
	}
	slices.SortFunc(spec.Devices, func(a, b cdispec.Device) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	v, err := cdispec.MinimumRequiredVersion(spec)
	if err != nil {
		return fmt.Errorf("CDI spec %s: %w", name, err)
	}
	spec.Version = v
	if err := cache.WriteSpec(spec, name); err != nil {
		return fmt.Errorf("write CDI spec %s in %s: %w", name, dir, err)
	}
	return nil
}
