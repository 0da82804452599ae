// Package cdi owns the device plugin's side of the Container Device
// Interface (tags.cncf.io/container-device-interface): checking the CDI kind
// it is configured with, forming the qualified device names its Allocate
// answers carry under the cdi strategy, and verifying at start that the
// node's CDI specs (the NVIDIA container toolkit's, in /etc/cdi and
// /var/run/cdi) resolve every GPU it serves (cdi.go); and writing the spec
// of the VFIO instances of the vgpu mode, one device per instance, that
// Kata's cold plug reads (write.go). It never writes the GPU spec: that
// spec's driver part (libraries, hooks) is the toolkit's to generate.
package cdi

import (
	"errors"
	"fmt"
	"os"
	"slices"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
)

// DefaultKind is the kind of the NVIDIA container toolkit's spec.
const DefaultKind = "nvidia.com/gpu"

// GenerateHint is what an admin runs to create the toolkit's spec with
// devices named by UUID, the names the plugin's Allocate answers use.
const GenerateHint = "nvidia-ctk cdi generate --device-name-strategy=uuid --output=/var/run/cdi/nvidia.yaml"

// ValidateKind checks a CDI kind (vendor/class).
func ValidateKind(kind string) error {
	vendor, class := parser.ParseQualifier(kind)
	if vendor == "" || class == "" {
		return fmt.Errorf("CDI kind %q: want vendor/class, e.g. %s", kind, DefaultKind)
	}
	if err := parser.ValidateVendorName(vendor); err != nil {
		return fmt.Errorf("CDI kind %q: %w", kind, err)
	}
	if err := parser.ValidateClassName(class); err != nil {
		return fmt.Errorf("CDI kind %q: %w", kind, err)
	}
	return nil
}

// DeviceName returns the qualified CDI name of a device of kind.
func DeviceName(kind, name string) (string, error) {
	if err := ValidateKind(kind); err != nil {
		return "", err
	}
	if err := parser.ValidateDeviceName(name); err != nil {
		return "", fmt.Errorf("CDI device name %q: %w", name, err)
	}
	vendor, class := parser.ParseQualifier(kind)
	return parser.QualifiedName(vendor, class, name), nil
}

// Report is what Verify found.
type Report struct {
	// Dirs are the spec directories that exist; none means the plugin
	// cannot see the node's specs (mount /etc/cdi and /var/run/cdi).
	Dirs []string
	// Missing are the qualified names no spec resolves.
	Missing []string
	// SpecErrors are the specs the library refused, with why.
	SpecErrors []string
}

// OK reports whether every device resolved.
func (r Report) OK() bool { return len(r.Dirs) > 0 && len(r.Missing) == 0 }

// Verify loads the CDI specs of dirs (default /etc/cdi and /var/run/cdi)
// with the library's cache, as a CDI runtime does, and reports which of the
// devices kind=<name> do not resolve.
func Verify(kind string, names []string, dirs ...string) (Report, error) {
	if len(dirs) == 0 {
		dirs = cdiapi.DefaultSpecDirs
	}
	var rep Report
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			rep.Dirs = append(rep.Dirs, d)
		}
	}
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dirs...), cdiapi.WithAutoRefresh(false))
	if err != nil && len(rep.Dirs) > 0 {
		// The cache reports unreadable specs here too; they are listed
		// below, and the devices of the others still resolve.
		rep.SpecErrors = append(rep.SpecErrors, err.Error())
	}
	if cache == nil {
		return rep, errors.New("CDI cache: no cache")
	}
	for path, errs := range cache.GetErrors() {
		for _, e := range errs {
			rep.SpecErrors = append(rep.SpecErrors, path+": "+e.Error())
		}
	}
	slices.Sort(rep.SpecErrors)
	rep.SpecErrors = slices.Compact(rep.SpecErrors)
	for _, n := range names {
		q, err := DeviceName(kind, n)
		if err != nil {
			return rep, err
		}
		if cache.GetDevice(q) == nil {
			rep.Missing = append(rep.Missing, q)
		}
	}
	return rep, nil
}
