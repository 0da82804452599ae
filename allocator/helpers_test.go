package allocator

import (
	"time"

	"fmt"

	"github.com/gpuslice/gpuslice/api"
)

// gpus returns n healthy devices of one model with the given slices, 100
// core units and slots each.
func gpus(n int, model string, slices, slots int64) []Device {
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", model, i), Model: model, Capacity: Units{Slices: slices, Core: 100, Slots: slots}, Healthy: true}
	}
	return out
}

// linked returns a link matrix where rank(i,j) = f(i,j).
func linked(n int, f func(i, j int) api.LinkType) [][]int8 {
	m := make([][]int8, n)
	for i := range m {
		m[i] = make([]int8, n)
		for j := range m[i] {
			if i != j {
				m[i][j] = int8(f(i, j).Rank())
			}
		}
	}
	return m
}

func one(name string, slices, core, count int64) ContainerRequest {
	return ContainerRequest{Name: name, Slices: slices, Core: core, Count: count}
}

func pod(cs ...ContainerRequest) *PodRequest { return &PodRequest{Containers: cs} }

// devicesOf returns the devices (positions) of each container, by name.
func devicesOf(a *Assignment) map[string][]int {
	out := map[string][]int{}
	for _, c := range a.Containers {
		out[c.Name] = c.Devices
	}
	return out
}

var testTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
