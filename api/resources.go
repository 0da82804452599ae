package api

// Domain prefixes every extended resource name and annotation key of the
// contract ("gpuslice.io/...").
const Domain = "gpuslice.io"

// Extended resource names of the gpuslice contract.
const (
	// ResourceGPUMem is GPU memory in slices (the container's total).
	ResourceGPUMem = Domain + "/gpu-mem"
	// ResourceGPUCore is the compute share in percent of one GPU (the
	// container's total).
	ResourceGPUCore = Domain + "/gpu-core"
	// ResourceGPUCount is the number of distinct GPUs a container spreads
	// over; on a node it is the number of sharing slots.
	ResourceGPUCount = Domain + "/gpu-count"
)

// Annotation keys of the contract.
const (
	// AnnotationInventory is the node annotation holding the JSON Inventory.
	AnnotationInventory = Domain + "/inventory"
	// AnnotationPlacement is the pod annotation holding the JSON Placement.
	AnnotationPlacement = Domain + "/placement"
	// AnnotationGPUModels is an optional pod annotation: a comma-separated
	// list of GPU models (as in Inventory GPU.Model) the pod may run on.
	AnnotationGPUModels = Domain + "/gpu-models"
	// AnnotationEnforcement is an optional pod annotation: the weakest
	// enforcement (api.Enforcement) the pod accepts on its GPUs. "binding"
	// places it only on GPUs whose isolation the container cannot loosen.
	AnnotationEnforcement = Domain + "/enforcement"
	// AnnotationAllocated is the pod annotation the device plugin writes once
	// kubelet has allocated the pod's containers: JSON Allocation.
	AnnotationAllocated = Domain + "/allocated"
)

// CoreUnitsPerGPU is the number of gpu-core units one whole GPU has.
const CoreUnitsPerGPU = 100

// DefaultSliceMiB is the default cluster-wide slice size (1 GiB).
const DefaultSliceMiB = 1024

// MinSliceMiB is the smallest slice size gpuslice accepts. It bounds the
// number of device IDs the device plugin advertises (8 x 141 GB GPUs at
// 256 MiB are about 4,500 IDs, well under kubelet's 4 MiB gRPC message).
const MinSliceMiB = 256
