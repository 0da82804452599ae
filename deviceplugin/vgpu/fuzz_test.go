package vgpu

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzDecodeNodeConfig(f *testing.F) {
	f.Add([]byte(readTestdata(f, "full.yaml")))
	f.Add([]byte(`{"gpus":[{"select":{"index":0},"mode":"vgpu","type":"557","instances":2}]}`))
	f.Add([]byte("gpus:\n- select: {bdf: 41:00.0}\n  mode: passthrough\n  bindVFIO: true\n"))
	f.Add([]byte("gpus: [{select: {model: x}, mode: none, extra: 1}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeNodeConfig(data)
		if err != nil {
			return
		}
		// A decoded config is valid, normalised, and survives a round trip.
		again := c
		again.GPUs = append([]GPUConfig(nil), c.GPUs...)
		if err := again.Normalize(); err != nil {
			t.Fatalf("Normalize of a decoded config: %v", err)
		}
		if d := cmp.Diff(c, again); d != "" {
			t.Fatalf("Normalize is not idempotent (-first +second):\n%s", d)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeNodeConfig(js)
		if err != nil {
			t.Fatalf("decoding %s: %v", js, err)
		}
		if d := cmp.Diff(c, back); d != "" {
			t.Fatalf("round trip (-decoded +re-decoded):\n%s", d)
		}
		for i, g := range c.GPUs {
			if g.Mode == ModeVGPU && (g.Instances < 1 || g.Type == "") {
				t.Fatalf("gpus[%d] accepted without type or instances: %+v", i, g)
			}
			if g.Select.BDF != "" && !ValidBDF(g.Select.BDF) {
				t.Fatalf("gpus[%d] accepted BDF %q", i, g.Select.BDF)
			}
		}
	})
}

// fuzzParse fuzzes parse from the seeds and checks each value it accepts.
func fuzzParse[T any](f *testing.F, parse func(string) (T, error), check func(t *testing.T, s string, v T), seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parse(s); err == nil {
			check(t, s, v)
		}
	})
}

func FuzzParseMdevDescription(f *testing.F) {
	fuzzParse(f, ParseMdevDescription, func(t *testing.T, s string, d MdevDescription) {
		if d.FramebufferMiB < 0 || d.FramebufferMiB > maxFramebufferMiB || d.MaxInstance < 0 || d.MaxInstance > maxCount {
			t.Fatalf("ParseMdevDescription(%q) = %+v: out of range", s, d)
		}
		if _, ok := d.Fields["framebuffer"]; ok && d.FramebufferMiB == 0 {
			t.Fatalf("ParseMdevDescription(%q): framebuffer given but parsed as 0", s)
		}
	}, t4Desc4Q, "framebuffer=48G", "num_heads=1,framebuffer=512M, max_instance=32", "framebuffer=0M")
}

func FuzzParseCreatableTypes(f *testing.F) {
	fuzzParse(f, ParseCreatableTypes, func(t *testing.T, s string, ts []VGPUType) {
		seen := map[int]bool{}
		for _, v := range ts {
			if v.ID <= 0 || seen[v.ID] || v.Name == "" || strings.TrimSpace(v.Name) != v.Name || v.FramebufferMiB < 0 {
				t.Fatalf("ParseCreatableTypes(%q) returned %+v", s, v)
			}
			seen[v.ID] = true
		}
	}, "ID    : vGPU Name\n557   : NVIDIA L40-1B\n558   : NVIDIA L40-2Q\n", "ID : vGPU Name\n", "557 : NVIDIA L40-4Q\n557 : dup\n")
}

func FuzzFramebufferFromTypeName(f *testing.F) {
	for _, s := range []string{"GRID T4-4Q", "NVIDIA L40-48Q", "GRID M60-0B", "NVIDIA A100-1-5C", "GRID M10-1B4", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mib, ok := FramebufferFromTypeName(s)
		if ok && (mib < 512 || mib > maxFramebufferMiB) || !ok && mib != 0 {
			t.Fatalf("FramebufferFromTypeName(%q) = %d, %v", s, mib, ok)
		}
	})
}

// FuzzDiscoverAttribute puts arbitrary content into one sysfs attribute and
// checks that discovery never panics and that a reconcile asked to remove
// everything writes nothing to a GPU it could not read.
func FuzzDiscoverAttribute(f *testing.F) {
	attrs := []string{
		"bus/pci/devices/" + mdevGPU + "/mdev_supported_types/nvidia-222/available_instances",
		"bus/pci/devices/" + mdevGPU + "/mdev_supported_types/nvidia-223/description",
		"bus/pci/devices/" + mdevGPU + "/device",
		"bus/pci/devices/" + mdevGPU + "/numa_node",
		"bus/pci/devices/" + sriovVFs[0] + "/nvidia/creatable_vgpu_types",
		"bus/pci/devices/" + sriovVFs[0] + "/nvidia/current_vgpu_type",
	}
	f.Add(uint8(0), "4")
	f.Add(uint8(1), "framebuffer=1M")
	f.Add(uint8(4), "ID : vGPU Name\n1 : a\n")
	f.Add(uint8(5), "-1")
	f.Fuzz(func(t *testing.T, which uint8, content string) {
		fk := newNode(t)
		createMdevs(t, fk, "nvidia-222", 1, 1)
		must(t, SetVFType(fk, sriovVFs[1], 557))
		must(t, fk.SetFile(attrs[int(which)%len(attrs)], content))
		n := discover(t, fk)
		before := len(fk.Writes())
		cfg := NodeConfig{GPUs: []GPUConfig{{Select: Selector{BDF: mdevGPU}, Mode: ModeNone}, {Select: Selector{BDF: sriovGPU}, Mode: ModeNone}}}
		must(t, cfg.Normalize())
		_, err := (&Reconciler{FS: fk, NewUUID: seqUUIDs()}).Reconcile(t.Context(), Input{Config: cfg})
		must(t, err)
		for _, w := range fk.Writes()[before:] {
			for _, g := range n.GPUs {
				if g.Err != nil && strings.Contains(w.Path, g.BDF[:10]) {
					t.Fatalf("wrote %+v on GPU %s whose discovery failed (%v)", w, g.BDF, g.Err)
				}
			}
		}
	})
}
