package cdi

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	oci "github.com/opencontainers/runtime-spec/specs-go"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpuslice/gpuslice/deviceplugin"
)

// toolkitSpec is a spec shaped like the NVIDIA toolkit's
// (nvidia-ctk cdi generate --device-name-strategy=uuid): one device per
// GPU UUID with its device node, and common edits.
func toolkitSpec(uuids ...string) *specs.Spec {
	s := &specs.Spec{
		Version: specs.CurrentVersion,
		Kind:    DefaultKind,
		ContainerEdits: specs.ContainerEdits{
			DeviceNodes: []*specs.DeviceNode{{Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255}},
			Env:         []string{"NVIDIA_VISIBLE_DEVICES=void"},
		},
	}
	for i, u := range uuids {
		s.Devices = append(s.Devices, specs.Device{Name: u, ContainerEdits: specs.ContainerEdits{
			DeviceNodes: []*specs.DeviceNode{{Path: "/dev/nvidia" + string(rune('0'+i)), Type: "c", Major: 195, Minor: int64(i)}},
		}})
	}
	return s
}

const (
	gpu0 = "GPU-11111111-2222-3333-4444-555555555555"
	gpu1 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// TestVerifyAndInject writes the spec with the library (as the toolkit
// does), verifies the plugin's GPUs against it, and injects the names the
// plugin's Allocate answers carry into an OCI spec the way a CDI runtime
// does: the container gets exactly its GPU's device node.
func TestVerifyAndInject(t *testing.T) {
	dir := t.TempDir()
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dir), cdiapi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WriteSpec(toolkitSpec(gpu0), "nvidia"); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(DefaultKind, []string{gpu0, gpu1}, dir, filepath.Join(dir, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Dirs: []string{dir}, Missing: []string{DefaultKind + "=" + gpu1}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if rep.OK() {
		t.Error("OK with a missing GPU")
	}

	if err := cache.Refresh(); err != nil {
		t.Fatal(err)
	}
	spec := &oci.Spec{Linux: &oci.Linux{}, Process: &oci.Process{}}
	if _, err := cache.InjectDevices(spec, deviceplugin.CDIName(DefaultKind, gpu0)); err != nil {
		t.Fatalf("inject %s: %v", deviceplugin.CDIName(DefaultKind, gpu0), err)
	}
	var paths []string
	for _, d := range spec.Linux.Devices {
		paths = append(paths, d.Path)
	}
	if diff := cmp.Diff([]string{"/dev/nvidiactl", "/dev/nvidia0"}, paths); diff != "" {
		t.Errorf("injected device nodes (-want +got):\n%s", diff)
	}
	if unresolved, err := cache.InjectDevices(&oci.Spec{Linux: &oci.Linux{}, Process: &oci.Process{}}, deviceplugin.CDIName(DefaultKind, gpu1)); err == nil {
		t.Errorf("a GPU without a spec device was injected (unresolved %v)", unresolved)
	}
}

func TestVerifyNoDirs(t *testing.T) {
	rep, err := Verify(DefaultKind, []string{gpu0}, filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Dirs) != 0 || rep.OK() {
		t.Errorf("report %+v, want no dirs and not OK", rep)
	}
}

func TestValidateKind(t *testing.T) {
	for _, tc := range []struct {
		kind, err string
	}{
		{DefaultKind, ""},
		{"example.com/fuse", ""},
		{"nvidia.com", "want vendor/class"},
		{"/gpu", "want vendor/class"},
		{"nvidia.com/", "want vendor/class"},
		{"nvi dia.com/gpu", "invalid character"},
		{"nvidia.com/g=pu", "invalid character"},
	} {
		err := ValidateKind(tc.kind)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidateKind(%q) = %v, want %q", tc.kind, err, tc.err)
		}
	}
	if _, err := DeviceName(DefaultKind, "a b"); err == nil {
		t.Error("DeviceName accepted a name with a space")
	}
	if got, err := DeviceName(DefaultKind, gpu0); err != nil || got != deviceplugin.CDIName(DefaultKind, gpu0) {
		t.Errorf("DeviceName = %q, %v; want the plugin's name %q", got, err, deviceplugin.CDIName(DefaultKind, gpu0))
	}
}
