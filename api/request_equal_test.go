package api

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPodRequestEqualAndClone(t *testing.T) {
	base := func() *PodRequest {
		return &PodRequest{
			Containers:     []ContainerRequest{{Name: "init", Init: true, Sidecar: true, Slices: 2}, {Name: "c", Slices: 8, Core: 20, Count: 2}},
			Models:         []string{"T4", "A10"},
			MinEnforcement: EnforcementCeiling,
			Sandbox:        IsolationPassthrough,
			CPUMilli:       500,
		}
	}
	for _, tc := range []struct {
		name   string
		change func(r *PodRequest)
		equal  bool
	}{
		{name: "same", change: func(*PodRequest) {}, equal: true},
		{name: "container share", change: func(r *PodRequest) { r.Containers[1].Slices = 9 }},
		{name: "container name", change: func(r *PodRequest) { r.Containers[1].Name = "d" }},
		{name: "sidecar flag", change: func(r *PodRequest) { r.Containers[0].Sidecar = false }},
		{name: "one container fewer", change: func(r *PodRequest) { r.Containers = r.Containers[1:] }},
		{name: "models", change: func(r *PodRequest) { r.Models = []string{"T4"} }},
		{name: "models order", change: func(r *PodRequest) { r.Models = []string{"A10", "T4"} }},
		{name: "enforcement", change: func(r *PodRequest) { r.MinEnforcement = "" }},
		{name: "sandbox", change: func(r *PodRequest) { r.Sandbox = "" }},
		{name: "cpu", change: func(r *PodRequest) { r.CPUMilli = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			if got := a.Equal(b); got != tc.equal {
				t.Errorf("Equal = %v, want %v", got, tc.equal)
			}
			if got := b.Equal(a); got != tc.equal {
				t.Errorf("Equal (reversed) = %v, want %v", got, tc.equal)
			}
			clone := b.Clone()
			if diff := cmp.Diff(b, clone); diff != "" || !clone.Equal(b) {
				t.Errorf("Clone differs (-orig +clone):\n%s", diff)
			}
			clone.Containers[0].Slices++
			if clone.Equal(b) {
				t.Error("Clone shares its containers with the original")
			}
		})
	}
	var nilReq *PodRequest
	if !nilReq.Equal(nil) || nilReq.Equal(base()) || base().Equal(nil) || nilReq.Clone() != nil {
		t.Error("nil requests: Equal only to nil, Clone of nil is nil")
	}
}
