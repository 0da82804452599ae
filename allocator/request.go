package allocator

import "github.com/gpuslice/gpuslice/api"

// ContainerRequest is one container's GPU request (api.ContainerRequest).
type ContainerRequest = api.ContainerRequest

// PodRequest is the GPU request of a whole pod (api.PodRequest).
type PodRequest = api.PodRequest
