package api

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAllocationRoundTrip(t *testing.T) {
	a := &Allocation{Version: AllocationVersion, Node: "n", AllocatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Containers: []ContainerPlacement{{Name: "c", Devices: []DeviceShare{{UUID: "GPU-a", Index: 1, Slices: 4, Core: 50, Slots: 1}}}}}
	s, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAllocation(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got.Container("c", false) == nil || got.Container("c", true) != nil {
		t.Error("Container lookup")
	}
	for in, want := range map[string]string{
		"":                             "empty",
		"{":                            "decode",
		`{"version":"x","node":"n"}`:   "not supported",
		`{"version":"gpuslice.io/v1"}`: "no node",
		`{"version":"gpuslice.io/v1","node":"n","containers":[{"name":""}]}`:                                     "without a name",
		`{"version":"gpuslice.io/v1","node":"n","containers":[{"name":"c","devices":[{"uuid":"","slices":1}]}]}`: "bad device share",
	} {
		if _, err := ParseAllocation(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAllocation(%q) = %v, want %q", in, err, want)
		}
	}
}
