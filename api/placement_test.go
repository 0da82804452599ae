package api

import (
	"strings"
	"testing"
	"time"
)

func TestParsePlacementErrors(t *testing.T) {
	const v = `"version":"gpuslice.io/v1","node":"n"`
	dev := func(d string) string { return `{` + v + `,"containers":[{"name":"c","devices":[` + d + `]}]}` }
	for in, want := range map[string]string{
		"":                                       "empty placement",
		"{":                                      "decode placement",
		`{"version":"x","node":"n"}`:             `placement: version "x" is not supported`,
		`{"version":"gpuslice.io/v1"}`:           "placement: no node",
		`{` + v + `,"containers":[{"name":""}]}`: "container without a name",
		`{` + v + `,"containers":[{"name":"c"},{"name":"c"}]}`:                           `container "c" listed twice`,
		dev(`{"uuid":"","slices":1}`):                                                    "has no GPU identity",
		dev(`{"uuid":"G","index":-1}`):                                                   "has no GPU identity",
		dev(`{"uuid":"G","slices":-1}`):                                                  "bad device share",
		dev(`{"uuid":"G","slices":4097}`):                                                "bad device share",
		dev(`{"uuid":"G","core":101}`):                                                   "bad device share",
		dev(`{"uuid":"G","slots":1025}`):                                                 "bad device share",
		dev(`{"uuid":"G","slices":99999999999999999999}`):                                "decode placement",
		dev(`{"uuid":"G","index":0,"slices":1},{"uuid":"G","index":0,"slices":1}`):       "GPU G listed twice",
		`{` + v + `,"containers":[{"name":"c","init":true},{"name":"c","init":false}]}x`: "decode placement",
	} {
		if _, err := ParsePlacement(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePlacement(%q) = %v, want %q", in, err, want)
		}
	}
	// An init container and an app container may share a name.
	if _, err := ParsePlacement(`{` + v + `,"containers":[{"name":"c","init":true},{"name":"c"}]}`); err != nil {
		t.Errorf("init and app container of one name: %v", err)
	}
	if _, err := ParseAllocation(""); err == nil || err.Error() != "empty allocation" {
		t.Errorf("ParseAllocation(\"\") = %v", err)
	}
}

func TestPlacementEqual(t *testing.T) {
	base := goldenPlacement()
	tests := []struct {
		name   string
		change func(p *Placement)
		want   bool
	}{
		{name: "same", change: func(*Placement) {}, want: true},
		{name: "timestamps ignored", change: func(p *Placement) { p.AssignedAt = time.Time{}; p.AllocatedAt = goldenTime }, want: true},
		{name: "node", change: func(p *Placement) { p.Node = "other" }},
		{name: "init flag", change: func(p *Placement) { p.Containers[1].Init = false }},
		{name: "name", change: func(p *Placement) { p.Containers[0].Name = "x" }},
		{name: "share", change: func(p *Placement) { p.Containers[2].Devices[0].Slices++ }},
		{name: "device order", change: func(p *Placement) {
			d := p.Containers[2].Devices
			d[0], d[1] = d[1], d[0]
		}},
		{name: "container dropped", change: func(p *Placement) { p.Containers = p.Containers[1:] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := goldenPlacement()
			tc.change(p)
			if got := base.Equal(p); got != tc.want {
				t.Errorf("Equal = %v, want %v", got, tc.want)
			}
			if got := p.Equal(base); got != tc.want {
				t.Errorf("Equal is not symmetric")
			}
		})
	}
	var nilP *Placement
	if !nilP.Equal(nil) || nilP.Equal(base) || base.Equal(nil) {
		t.Error("nil handling")
	}
}

func TestPlacementContainer(t *testing.T) {
	p := goldenPlacement()
	if c := p.Container("sidecar", true); c == nil || c.Name != "sidecar" {
		t.Errorf("Container(sidecar, init) = %v", c)
	}
	if c := p.Container("sidecar", false); c != nil {
		t.Errorf("Container(sidecar, app) = %v, want nil", c)
	}
}

// fuzzRecord checks one decoder: it never panics, and an accepted record
// is valid and survives an encode/decode round trip unchanged.
func fuzzRecord(f *testing.F, parse func(string) (*Placement, error)) {
	for _, s := range []string{"", "{", "null", `{"version":"gpuslice.io/v1","node":"n","containers":null}`} {
		f.Add(s)
	}
	b, err := goldenPlacement().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	b, err = goldenAllocation().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if back := roundTrip(t, p, parse); !p.Equal(back) {
			t.Fatalf("round trip changed the record: %+v, then %+v", p, back)
		}
	})
}

func FuzzParsePlacement(f *testing.F)  { fuzzRecord(f, ParsePlacement) }
func FuzzParseAllocation(f *testing.F) { fuzzRecord(f, ParseAllocation) }
