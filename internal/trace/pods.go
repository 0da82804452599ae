package trace

import (
	"fmt"
	"io"
	"strings"
)

// MilliPerGPU is the capacity of one GPU in the trace's GPU unit.
const MilliPerGPU = 1000

// Pod is one row of a pod list.
type Pod struct {
	Name     string
	CPUMilli int64
	// MemoryMiB is host memory; not part of the published fit.
	MemoryMiB int64
	// NumGPU is the number of GPUs (0..8); GPUMilli the share of each GPU in
	// thousandths (1000 for whole GPUs).
	NumGPU   int
	GPUMilli int64
	// Models lists the GPU models the pod may run on (empty: any).
	Models []string
	// Created and Deleted are the creation_time and deletion_time columns
	// (seconds from the trace's start; 0 when absent). Deletes reports
	// whether the row gives a deletion time.
	Created, Deleted int64
	Deletes          bool
}

// Sharing reports whether the pod takes a share of one GPU.
func (p Pod) Sharing() bool { return p.NumGPU == 1 && p.GPUMilli < MilliPerGPU }

// GPUDemand returns the pod's GPU request in milli-GPU: gpu_milli for a
// sharing pod, num_gpu*1000 otherwise.
func (p Pod) GPUDemand() int64 {
	if p.Sharing() {
		return p.GPUMilli
	}
	return int64(p.NumGPU) * MilliPerGPU
}

// ReadPods reads a pod list CSV file.
func ReadPods(path string) ([]Pod, error) {
	return readFile(path, ParsePods)
}

// ParsePods parses a pod list: the columns name, cpu_milli, num_gpu and
// gpu_milli are required, memory_mib, gpu_spec, creation_time and
// deletion_time optional.
func ParsePods(r io.Reader) ([]Pod, error) {
	return parseRows(r, []string{"name", "cpu_milli", "num_gpu", "gpu_milli"},
		[]string{"memory_mib", "gpu_spec", "creation_time", "deletion_time"}, podOf)
}

func podOf(row []string, cols, opt []int) (Pod, error) {
	mem, spec := opt[0], opt[1]
	p := Pod{Name: field(row, cols[0])}
	var err error
	if p.Created, err = intField(row, opt[2], "creation_time"); err != nil {
		return p, err
	}
	if p.Deleted, err = intField(row, opt[3], "deletion_time"); err != nil {
		return p, err
	}
	p.Deletes = field(row, opt[3]) != ""
	if p.CPUMilli, err = intField(row, cols[1], "cpu_milli"); err != nil {
		return p, err
	}
	if p.MemoryMiB, err = intField(row, mem, "memory_mib"); err != nil {
		return p, err
	}
	n, err := intField(row, cols[2], "num_gpu")
	if err != nil {
		return p, err
	}
	p.NumGPU = int(n)
	if p.GPUMilli, err = intField(row, cols[3], "gpu_milli"); err != nil {
		return p, err
	}
	switch {
	case p.NumGPU == 0:
		p.GPUMilli = 0
	case p.GPUMilli == 0 || p.GPUMilli > MilliPerGPU:
		return p, fmt.Errorf("pod %s: gpu_milli %d with num_gpu %d", p.Name, p.GPUMilli, p.NumGPU)
	case p.NumGPU > 1 && p.GPUMilli != MilliPerGPU:
		return p, fmt.Errorf("pod %s: %d GPUs of %d milli each (multi-GPU pods take whole GPUs)", p.Name, p.NumGPU, p.GPUMilli)
	}
	if s := field(row, spec); s != "" && s != "nan" {
		for _, m := range strings.Split(s, "|") {
			if m = strings.TrimSpace(m); m != "" {
				p.Models = append(p.Models, m)
			}
		}
	}
	return p, nil
}
