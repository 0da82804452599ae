package api

import (
	"errors"
	"strings"
	"testing"
)

func TestPlacementConsistentWith(t *testing.T) {
	// The golden placement's pod: init 8 slices on one GPU, a sidecar of 2
	// slices and 10 core, an app of 8 slices and 100 core over 2 GPUs.
	req := func() *PodRequest {
		return &PodRequest{Containers: []ContainerRequest{
			{Name: "init", Init: true, Slices: 8},
			{Name: "sidecar", Init: true, Sidecar: true, Slices: 2, Core: 10},
			{Name: "app", Slices: 8, Core: 100, Count: 2},
		}}
	}
	tests := []struct {
		name    string
		node    string
		req     func() *PodRequest
		change  func(p *Placement)
		wantErr string
	}{
		{name: "consistent", req: req},
		{name: "other node", node: "node-b", req: req, wantErr: `placement is for node "node-a", the pod is on "node-b"`},
		{name: "cpu-only pod, forged placement", req: func() *PodRequest { return &PodRequest{} }, wantErr: "lists 3 containers, the pod has 0"},
		{name: "cpu-only pod, empty placement", req: func() *PodRequest { return &PodRequest{} }, change: func(p *Placement) { p.Containers = nil }},
		{name: "container missing", req: req, change: func(p *Placement) { p.Containers = p.Containers[1:] }, wantErr: "lists 2 containers"},
		{name: "renamed", req: req, change: func(p *Placement) { p.Containers[2].Name = "other" }, wantErr: `container "other" asks for no GPU`},
		{name: "init flag dropped", req: req, change: func(p *Placement) { p.Containers[1].Init = false }, wantErr: `container "sidecar" asks for no GPU`},
		{name: "fewer GPUs", req: req, change: func(p *Placement) { p.Containers[2].Devices = p.Containers[2].Devices[:1] }, wantErr: "is on 1 GPUs, it asks for 2"},
		{name: "smaller share", req: req, change: func(p *Placement) { p.Containers[2].Devices[1].Slices = 1 }, wantErr: "holds"},
		{name: "bigger share", req: req, change: func(p *Placement) { p.Containers[0].Devices[0].Slices = 9 }, wantErr: "holds"},
		{name: "no slot", req: req, change: func(p *Placement) { p.Containers[0].Devices[0].Slots = 0 }, wantErr: "holds"},
		{name: "core dropped", req: req, change: func(p *Placement) { p.Containers[1].Devices[0].Core = 0 }, wantErr: "holds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := goldenPlacement()
			if tc.change != nil {
				tc.change(p)
			}
			node := tc.node
			if node == "" {
				node = "node-a"
			}
			err := p.ConsistentWith(tc.req(), node)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInconsistent) {
				t.Fatalf("err = %v, want %q wrapping ErrInconsistent", err, tc.wantErr)
			}
		})
	}
}

// FuzzConsistentWith checks that a placement accepted as consistent never
// charges more containers, GPUs or units than the request asks.
func FuzzConsistentWith(f *testing.F) {
	b, err := goldenPlacement().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, int64(8), int64(2), int64(2))
	f.Fuzz(func(t *testing.T, s string, slices, core, count int64) {
		p, err := ParsePlacement(s)
		if err != nil {
			return
		}
		r := &PodRequest{Containers: []ContainerRequest{{Name: "app", Slices: slices, Core: core, Count: count}}}
		if r.Validate() != nil {
			return
		}
		if p.ConsistentWith(r, p.Node) != nil {
			return
		}
		per := r.Containers[0].PerGPU()
		if len(p.Containers) != 1 || len(p.Containers[0].Devices) != r.Containers[0].GPUs() {
			t.Fatalf("accepted %s for %+v", s, r)
		}
		for _, d := range p.Containers[0].Devices {
			if d.Units() != per {
				t.Fatalf("accepted share %+v for %+v", d, per)
			}
		}
	})
}
