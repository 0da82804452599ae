package vgpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// maxFramebufferMiB bounds parsed framebuffer sizes (16 TiB): anything
// larger is a malformed attribute, not a GPU.
const maxFramebufferMiB = 16 << 20

// maxCount bounds parsed instance counts and type IDs.
const maxCount = 1 << 20

// MdevDescription is a parsed mdev type description.
//
// NVIDIA's vGPU manager publishes mdev_supported_types/<type>/description
// as comma-separated key=value pairs on one line, for example
//
//	num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=5120x2880, max_instance=4
//
// framebuffer is a decimal size with an M (MiB) or G (GiB) suffix,
// max_instance a decimal count. ParseMdevDescription relies on exactly that:
// pairs separated by commas, white space around them ignored, each key at
// most once. Keys it does not know are kept in Fields; framebuffer and
// max_instance are optional (0 when absent) but must be well-formed when
// present.
type MdevDescription struct {
	FramebufferMiB int64
	MaxInstance    int
	// Fields holds every pair as written.
	Fields map[string]string
}

// ParseMdevDescription parses an mdev type description (see
// MdevDescription). An empty description is valid and says nothing.
func ParseMdevDescription(s string) (MdevDescription, error) {
	d := MdevDescription{Fields: map[string]string{}}
	s = strings.TrimSpace(s)
	if s == "" {
		return d, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return MdevDescription{}, fmt.Errorf("description %q: %q is not key=value", s, pair)
		}
		if _, dup := d.Fields[k]; dup {
			return MdevDescription{}, fmt.Errorf("description %q: %s given twice", s, k)
		}
		d.Fields[k] = v
	}
	if v, ok := d.Fields["framebuffer"]; ok {
		fb, err := ParseFramebuffer(v)
		if err != nil {
			return MdevDescription{}, fmt.Errorf("description %q: %w", s, err)
		}
		d.FramebufferMiB = fb
	}
	if v, ok := d.Fields["max_instance"]; ok {
		n, err := parseCount(v)
		if err != nil {
			return MdevDescription{}, fmt.Errorf("description %q: max_instance: %w", s, err)
		}
		d.MaxInstance = n
	}
	return d, nil
}

// ParseFramebuffer parses a framebuffer size as the description writes it:
// decimal digits and M (MiB) or G (GiB), "4096M", "48G".
func ParseFramebuffer(v string) (int64, error) {
	if len(v) < 2 {
		return 0, fmt.Errorf("framebuffer %q: want a size such as 4096M", v)
	}
	num, unit := v[:len(v)-1], v[len(v)-1]
	mul := int64(1)
	switch unit {
	case 'M':
	case 'G':
		mul = 1024
	default:
		return 0, fmt.Errorf("framebuffer %q: unit must be M or G", v)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > maxFramebufferMiB/mul || !isDigits(num) {
		return 0, fmt.Errorf("framebuffer %q: not a positive size", v)
	}
	return n * mul, nil
}

// typeNameRE matches the end of an NVIDIA vGPU type name: "-<GiB><series>"
// with an optional display-head count ("GRID M10-1B4"); a MIG-backed type
// has the slice count before it ("NVIDIA A100-1-5C").
var typeNameRE = regexp.MustCompile(`-([0-9]+)([A-Z]+)([0-9]*)$`)

// FramebufferFromTypeName returns the framebuffer an NVIDIA vGPU type name
// encodes. NVIDIA names types "<board>-<framebuffer in GiB><series>", where
// series is a letter such as A, B, C or Q ("GRID T4-4Q", "NVIDIA L40-48Q");
// a framebuffer of 0 means 512 MiB ("GRID M60-0B"). ok is false when the
// name does not follow that form.
func FramebufferFromTypeName(name string) (mib int64, ok bool) {
	m := typeNameRE.FindStringSubmatch(strings.TrimSpace(name))
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > maxFramebufferMiB/1024 {
		return 0, false
	}
	if n == 0 {
		return 512, true
	}
	return n * 1024, true
}

// ParseCreatableTypes parses an SR-IOV VF's nvidia/creatable_vgpu_types.
//
// The format NVIDIA documents is a header line and one line per type, an ID
// and a name separated by a colon, padded with spaces:
//
//	ID    : vGPU Name
//	557   : NVIDIA L40-1B
//	558   : NVIDIA L40-2Q
//
// Blank lines and the header (a line whose first field is "ID") are
// skipped; every other line must be "<decimal ID> : <name>" with a positive
// ID, a non-empty name and no ID twice. A list with only the header (no type
// can be created on this VF now) is valid and empty.
func ParseCreatableTypes(s string) ([]VGPUType, error) {
	var out []VGPUType
	seen := map[int]bool{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, name, ok := strings.Cut(line, ":")
		id, name = strings.TrimSpace(id), strings.TrimSpace(name)
		if ok && i == firstLine(s) && strings.EqualFold(id, "ID") {
			continue
		}
		n, err := parseCount(id)
		if !ok || err != nil || n == 0 || name == "" {
			return nil, fmt.Errorf("creatable_vgpu_types line %d %q: want \"<ID> : <name>\"", i+1, line)
		}
		if seen[n] {
			return nil, fmt.Errorf("creatable_vgpu_types line %d: type %d listed twice", i+1, n)
		}
		seen[n] = true
		fb, _ := FramebufferFromTypeName(name)
		out = append(out, VGPUType{ID: n, Name: name, FramebufferMiB: fb})
	}
	return out, nil
}

// firstLine is the index of s's first non-blank line.
func firstLine(s string) int {
	for i, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			return i
		}
	}
	return -1
}

// parseCount parses a non-negative decimal count.
func parseCount(v string) (int, error) {
	if !isDigits(v) {
		return 0, fmt.Errorf("%q is not a non-negative decimal number", v)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > maxCount {
		return 0, fmt.Errorf("%q is out of range", v)
	}
	return n, nil
}

func isDigits(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
