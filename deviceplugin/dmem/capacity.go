package dmem

import (
	"fmt"
	"strconv"
	"strings"
)

// Files of the dmem controller.
const (
	// CapacityFile, in the root cgroup, lists every region and its size.
	CapacityFile = "dmem.capacity"
	// MaxFile, in a cgroup, holds the hard limits.
	MaxFile = "dmem.max"
	// maxValue is the dmem.max value of an unlimited region.
	maxValue = "max"
)

// Limits of what a dmem file may hold (a hostile or broken file cannot
// make the plugin hold more).
const (
	maxRegions    = 1024
	maxRegionName = 256
)

// Region is one line of dmem.capacity, or of dmem.max: a device-memory
// region and its size or limit in bytes. Max marks a dmem.max line whose
// value is "max" (no limit); Bytes is then 0.
type Region struct {
	Name  string
	Bytes uint64
	Max   bool
}

// ParseCapacity decodes dmem.capacity: one "<region> <bytes>" line per
// region, no duplicate region, every size a decimal number.
func ParseCapacity(b []byte) ([]Region, error) {
	return parseRegions(b, false)
}

// ParseMax decodes dmem.max: like dmem.capacity, but a value may be "max".
func ParseMax(b []byte) ([]Region, error) {
	return parseRegions(b, true)
}

func parseRegions(b []byte, allowMax bool) ([]Region, error) {
	var out []Region
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		if len(f) != 2 {
			return nil, fmt.Errorf("dmem line %d %q: want \"<region> <bytes>\"", i+1, line)
		}
		r := Region{Name: f[0]}
		if err := checkRegionName(r.Name); err != nil {
			return nil, fmt.Errorf("dmem line %d: %w", i+1, err)
		}
		if allowMax && f[1] == maxValue {
			r.Max = true
		} else {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || (len(f[1]) > 1 && f[1][0] == '0') {
				return nil, fmt.Errorf("dmem line %d %q: size %q is not a decimal number of bytes", i+1, line, f[1])
			}
			r.Bytes = n
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("dmem line %d: region %q listed twice", i+1, r.Name)
		}
		if len(out) == maxRegions {
			return nil, fmt.Errorf("dmem: more than %d regions", maxRegions)
		}
		seen[r.Name] = true
		out = append(out, r)
	}
	return out, nil
}

// checkRegionName accepts a region name of printable ASCII without spaces.
func checkRegionName(name string) error {
	if name == "" || len(name) > maxRegionName {
		return fmt.Errorf("region name %q: must be 1..%d bytes", name, maxRegionName)
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' {
			return fmt.Errorf("region name %q: only printable ASCII without spaces", name)
		}
	}
	return nil
}

// Format encodes regions as ParseCapacity and ParseMax read them.
func Format(regions []Region) string {
	var b strings.Builder
	for _, r := range regions {
		b.WriteString(r.line())
	}
	return b.String()
}

// line is r as one dmem line: "<region> <bytes|max>\n".
func (r Region) line() string {
	if r.Max {
		return r.Name + " " + maxValue + "\n"
	}
	return r.Name + " " + strconv.FormatUint(r.Bytes, 10) + "\n"
}

// GPURegion returns the name of the region of the NVIDIA GPU whose PCI bus
// ID is pciBusID ("0000:07:00.0" as sysfs writes it, or NVML's
// "00000000:07:00.0") among regions: nvidia/<bus ID>/vidmem, with the bus
// ID compared by value.
func GPURegion(regions []Region, pciBusID string) (string, error) {
	want, err := parseBusID(pciBusID)
	if err != nil {
		return "", err
	}
	for _, r := range regions {
		parts := strings.Split(r.Name, "/")
		if len(parts) != 3 || parts[0] != "nvidia" || parts[2] != "vidmem" {
			continue
		}
		if got, err := parseBusID(parts[1]); err == nil && got == want {
			return r.Name, nil
		}
	}
	return "", fmt.Errorf("no dmem region nvidia/%s/vidmem in %s", pciBusID, CapacityFile)
}

// busID is a PCI address by value.
type busID struct{ domain, bus, dev, fn uint64 }

// parseBusID parses "<domain>:<bus>:<device>.<function>" in hex.
func parseBusID(s string) (busID, error) {
	bad := fmt.Errorf("PCI bus ID %q: want <domain>:<bus>:<device>.<function>", s)
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return busID{}, bad
	}
	devStr, fnStr, ok := strings.Cut(f[2], ".")
	if !ok {
		return busID{}, bad
	}
	var id busID
	for _, p := range []struct {
		s    string
		bits int
		out  *uint64
	}{{f[0], 32, &id.domain}, {f[1], 8, &id.bus}, {devStr, 5, &id.dev}, {fnStr, 3, &id.fn}} {
		n, err := strconv.ParseUint(p.s, 16, p.bits)
		if err != nil || p.s == "" {
			return busID{}, bad
		}
		*p.out = n
	}
	return id, nil
}
