package trace

import (
	"errors"
	"math/rand/v2"
)

// Arrival is one pod of a workload with the cumulative GPU demand that has
// arrived once it has (itself included), in milli-GPU.
type Arrival struct {
	Pod
	Cumulative int64
}

// Workload builds the published workload: the pod list shuffled with the
// seed, then pods drawn from it with replacement until the summed GPU
// request reaches target milli-GPU (or the shuffled list cut where it
// does). The same seed always gives the same workload.
func Workload(pods []Pod, seed uint64, target int64) ([]Arrival, error) {
	if len(pods) == 0 {
		return nil, errors.New("empty pod list")
	}
	var total int64
	for _, p := range pods {
		total += p.GPUDemand()
	}
	if total == 0 {
		return nil, errors.New("pod list asks for no GPU")
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	order := make([]Pod, len(pods))
	copy(order, pods)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	out := make([]Arrival, 0, len(pods))
	var cum int64
	for i := 0; cum < target; i++ {
		var p Pod
		if i < len(order) {
			p = order[i]
		} else {
			p = order[rng.IntN(len(order))]
		}
		cum += p.GPUDemand()
		out = append(out, Arrival{Pod: p, Cumulative: cum})
	}
	return out, nil
}
