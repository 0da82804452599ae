package vgpu

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMdevDescription(t *testing.T) {
	d, err := ParseMdevDescription(t4Desc4Q)
	must(t, err)
	want := MdevDescription{FramebufferMiB: 4096, MaxInstance: 4, Fields: map[string]string{
		"num_heads": "4", "frl_config": "60", "framebuffer": "4096M", "max_resolution": "5120x2880", "max_instance": "4",
	}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantParseErrors(t, "ParseMdevDescription", ParseMdevDescription, []badInput{
		{"framebuffer=4096", "unit must be M or G"},
		{"framebuffer=-4M", "not a positive size"},
		{"framebuffer=0M", "not a positive size"},
		{"framebuffer=+4M", "not a positive size"},
		{"framebuffer=99999999G", "not a positive size"},
		{"framebuffer=1M, framebuffer=2M", "framebuffer given twice"},
		{"num_heads", "is not key=value"},
		{"max_instance=many", "max_instance"},
	})
	if d, err := ParseMdevDescription("framebuffer=2G"); err != nil || d.FramebufferMiB != 2048 {
		t.Errorf("framebuffer=2G: %d, %v", d.FramebufferMiB, err)
	}
}

func TestFramebufferFromTypeName(t *testing.T) {
	for name, want := range map[string]int64{
		"GRID T4-4Q": 4096, "NVIDIA L40-48Q": 49152, "GRID M60-0B": 512, "NVIDIA A100-1-5C": 5120,
		"GRID M10-1B4": 1024, "NVIDIA H100-1-10CME": 10240, "GRID T4": 0, "T4-Q": 0, "": 0,
	} {
		got, ok := FramebufferFromTypeName(name)
		if got != want || ok != (want != 0) {
			t.Errorf("FramebufferFromTypeName(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

func TestParseCreatableTypes(t *testing.T) {
	got, err := ParseCreatableTypes("ID    : vGPU Name\n557   : NVIDIA L40-1B\n\n558   : NVIDIA L40-2Q\n")
	must(t, err)
	want := []VGPUType{{ID: 557, Name: "NVIDIA L40-1B", FramebufferMiB: 1024}, {ID: 558, Name: "NVIDIA L40-2Q", FramebufferMiB: 2048}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if got, err := ParseCreatableTypes("ID : vGPU Name\n"); err != nil || len(got) != 0 {
		t.Errorf("header only: %v, %v", got, err)
	}
	wantParseErrors(t, "ParseCreatableTypes", ParseCreatableTypes, []badInput{
		{"557 NVIDIA L40-1B", `line 1 "557 NVIDIA L40-1B"`},
		{"ID : vGPU Name\nx : y", "line 2"},
		{"0 : zero", "line 1"},
		{"557 :", "line 1"},
		{"557 : a\n557 : b", "type 557 listed twice"},
		{"ID : vGPU Name\nID : again", "line 2"},
	})
}

// badInput is an input a parser refuses, and what its error mentions.
type badInput struct{ in, want string }

// wantParseErrors checks that parse, named name, refuses every input with
// an error that mentions its want.
func wantParseErrors[T any](t *testing.T, name string, parse func(string) (T, error), bad []badInput) {
	t.Helper()
	for _, tc := range bad {
		if _, err := parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s(%q) = %v, want an error containing %q", name, tc.in, err, tc.want)
		}
	}
}
