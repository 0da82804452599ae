package allocator

import "github.com/gpuslice/gpuslice/api"

// Units is an amount of each per-GPU resource (api.Units: gpu-mem slices,
// gpu-core units, sharing slots).
type Units = api.Units
