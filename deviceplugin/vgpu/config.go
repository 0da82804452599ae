package vgpu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/gpuslice/gpuslice/api"
)

// Mode is what the admin wants of a GPU.
type Mode string

const (
	// ModeVGPU means the GPU is split into vGPU instances of one type (vfio-mdev
	// or SR-IOV, whichever the GPU offers).
	ModeVGPU Mode = "vgpu"
	// ModePassthrough means the whole GPU goes to one VM through vfio-pci.
	ModePassthrough Mode = "passthrough"
	// ModeNone means the GPU has no vGPU instances (unused ones are removed); it
	// is left for the container modes.
	ModeNone Mode = "none"
)

// NodeConfig is the admin's vGPU sizing of one node. GPUs that no entry
// selects are not touched.
//
// In YAML:
//
//	gpus:
//	- select: {model: "Tesla T4"}
//	  mode: vgpu
//	  type: GRID T4-4Q
//	  instances: 4
//	- select: {bdf: "0000:81:00.0"}
//	  mode: passthrough
//	  bindVFIO: true
//	  memoryMiB: 81920
type NodeConfig struct {
	GPUs []GPUConfig `json:"gpus"`
}

// GPUConfig is the sizing of the GPUs one selector picks.
type GPUConfig struct {
	Select Selector `json:"select"`
	Mode   Mode     `json:"mode"`
	// Type is the vGPU type, by name as sysfs shows it ("GRID T4-4Q",
	// "NVIDIA L40-4Q"; case does not matter) or by ID (the mdev type
	// directory "nvidia-222", or the SR-IOV type number "557"). vgpu only.
	Type string `json:"type,omitempty"`
	// Instances is how many instances of Type each selected GPU has. vgpu
	// only; at least 1.
	Instances int `json:"instances,omitempty"`
	// BindVFIO allows rebinding the GPU (and its IOMMU group) to vfio-pci
	// when it is on another driver and unused. passthrough only; without it
	// a GPU not on vfio-pci is reported, not rebound.
	BindVFIO bool `json:"bindVFIO,omitempty"`
	// MemoryMiB is the GPU's memory, for passthrough GPUs that NVML does
	// not see (sysfs does not tell a GPU's memory, and NVML does not see a
	// GPU on vfio-pci); NVML's value wins where it has one. passthrough
	// only.
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
}

// Selector picks GPUs; exactly one field is set. When several entries
// select one GPU, the most specific wins: bdf, then index, then deviceID,
// then model; two entries of the same kind selecting one GPU leave it
// untouched and are reported.
type Selector struct {
	// Index is the GPU's position among the node's NVIDIA GPUs in PCI
	// address order.
	Index *int `json:"index,omitempty"`
	// BDF is the PCI address, "0000:41:00.0" (the domain "0000:" may be
	// left out).
	BDF string `json:"bdf,omitempty"`
	// DeviceID is the PCI device id, "0x1eb8".
	DeviceID string `json:"deviceID,omitempty"`
	// Model is the GPU's product name as NVML reports it ("Tesla T4"),
	// compared case-insensitively; it needs the names passed to Reconcile.
	Model string `json:"model,omitempty"`
}

// specificity ranks selector kinds: lower wins.
func (s Selector) specificity() int {
	switch {
	case s.BDF != "":
		return 0
	case s.Index != nil:
		return 1
	case s.DeviceID != "":
		return 2
	default:
		return 3
	}
}

func (s Selector) String() string {
	switch {
	case s.BDF != "":
		return "bdf " + s.BDF
	case s.Index != nil:
		return fmt.Sprintf("index %d", *s.Index)
	case s.DeviceID != "":
		return "deviceID " + s.DeviceID
	default:
		return fmt.Sprintf("model %q", s.Model)
	}
}

// DecodeNodeConfig decodes a NodeConfig from YAML or JSON strictly (an
// unknown or duplicated field is an error), normalises addresses and ids,
// and validates it. Errors name the field: "gpus[1].instances: ...".
func DecodeNodeConfig(data []byte) (NodeConfig, error) {
	var c NodeConfig
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return NodeConfig{}, fmt.Errorf("vGPU config: %w", err)
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return NodeConfig{}, fmt.Errorf("vGPU config: %w", err)
	}
	if err := unknownFields(generic, reflect.TypeFor[NodeConfig](), ""); err != nil {
		return NodeConfig{}, fmt.Errorf("vGPU config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return NodeConfig{}, fmt.Errorf("vGPU config: %w", err)
	}
	if err := c.Normalize(); err != nil {
		return NodeConfig{}, fmt.Errorf("vGPU config: %w", err)
	}
	return c, nil
}

// Normalize lower-cases and completes addresses and ids and validates the
// config; it is idempotent.
func (c *NodeConfig) Normalize() error {
	var errs []error
	seen := map[string]int{}
	for i := range c.GPUs {
		g := &c.GPUs[i]
		at := fmt.Sprintf("gpus[%d]", i)
		if err := g.normalize(at); err != nil {
			errs = append(errs, err)
			continue
		}
		if g.Select.BDF == "" && g.Select.Index == nil {
			continue
		}
		key := g.Select.String()
		if j, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s.select: %s is already selected by gpus[%d]", at, key, j))
		}
		seen[key] = i
	}
	return errors.Join(errs...)
}

func (g *GPUConfig) normalize(at string) error {
	s := &g.Select
	set := 0
	for _, b := range []bool{s.Index != nil, s.BDF != "", s.DeviceID != "", s.Model != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("%s.select: set exactly one of index, bdf, deviceID, model (%d set)", at, set)
	}
	switch {
	case s.Index != nil && *s.Index < 0:
		return fmt.Errorf("%s.select.index: %d is negative", at, *s.Index)
	case s.BDF != "":
		b := strings.ToLower(strings.TrimSpace(s.BDF))
		if strings.Count(b, ":") == 1 {
			b = "0000:" + b
		}
		if !ValidBDF(b) {
			return fmt.Errorf("%s.select.bdf: %q is not a PCI address (want 0000:41:00.0)", at, s.BDF)
		}
		s.BDF = b
	case s.DeviceID != "":
		id := strings.ToLower(strings.TrimSpace(s.DeviceID))
		if !strings.HasPrefix(id, "0x") {
			id = "0x" + id
		}
		if len(id) != 6 || !isHex(id[2:]) {
			return fmt.Errorf("%s.select.deviceID: %q is not a PCI device id (want 0x1eb8)", at, s.DeviceID)
		}
		s.DeviceID = id
	case s.Model != "":
		s.Model = strings.TrimSpace(s.Model)
		if s.Model == "" {
			return fmt.Errorf("%s.select.model: empty", at)
		}
	}
	g.Type = strings.TrimSpace(g.Type)
	switch g.Mode {
	case ModeVGPU:
		if g.Type == "" {
			return fmt.Errorf("%s.type: required for mode vgpu", at)
		}
		if g.Instances < 1 {
			return fmt.Errorf("%s.instances: must be at least 1 for mode vgpu (use mode none for no instances)", at)
		}
		if g.Instances > maxCount {
			return fmt.Errorf("%s.instances: %d is out of range", at, g.Instances)
		}
		if g.BindVFIO {
			return fmt.Errorf("%s.bindVFIO: only for mode passthrough", at)
		}
		if g.MemoryMiB != 0 {
			return fmt.Errorf("%s.memoryMiB: only for mode passthrough", at)
		}
	case ModePassthrough, ModeNone:
		if g.MemoryMiB < 0 || g.MemoryMiB > api.MaxMemoryMiBPerGPU {
			return fmt.Errorf("%s.memoryMiB: %d is out of range (0..%d)", at, g.MemoryMiB, api.MaxMemoryMiBPerGPU)
		}
		if g.Mode == ModeNone && g.MemoryMiB != 0 {
			return fmt.Errorf("%s.memoryMiB: only for mode passthrough", at)
		}
		if g.Type != "" {
			return fmt.Errorf("%s.type: only for mode vgpu", at)
		}
		if g.Instances != 0 {
			return fmt.Errorf("%s.instances: only for mode vgpu", at)
		}
		if g.Mode == ModeNone && g.BindVFIO {
			return fmt.Errorf("%s.bindVFIO: only for mode passthrough", at)
		}
	case "":
		return fmt.Errorf("%s.mode: required (vgpu, passthrough or none)", at)
	default:
		return fmt.Errorf("%s.mode: unknown mode %q (want vgpu, passthrough or none)", at, g.Mode)
	}
	return nil
}

// unknownFields finds the first key of v (decoded JSON) that t has no field
// for, and names it with its path ("gpus[0].instnces"); encoding/json's own
// error names the key but not where it is.
func unknownFields(v any, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // a type error; the decoder reports it
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = t.Field(i).Type
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			path := k
			if at != "" {
				path = at + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown field %q", path)
			}
			if err := unknownFields(obj[k], ft, path); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range arr {
			if err := unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return s != ""
}
