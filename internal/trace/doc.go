// Package trace owns the Alibaba GPU-sharing trace (openb) files used by the
// trace benchmark: parsing the pod and node CSV files and building the
// published workload (shuffle with a seed, resample with replacement until
// the summed GPU request reaches a share of the cluster's capacity).
//
// It knows nothing about placement; internal/sim maps the parsed pods and
// nodes onto the allocator's request model.
package trace
