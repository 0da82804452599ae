package capability

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpuslice/gpuslice/api"
)

// Minimum versions for MPS v3 (namespaces, the TOML configuration and
// memory partitioning), as NVIDIA's MPS guide gives them: driver r615 and
// CUDA 13.4.
const (
	MinMPSv3DriverMajor = 615
	MinMPSv3CUDA        = 13040 // NVML's encoding: 1000*major + 10*minor
)

// cgroupControllers lists the controllers of the unified hierarchy's root.
const cgroupControllers = "sys/fs/cgroup/cgroup.controllers"

// NVML is the part of go-nvml detection uses; gonvml.New() and go-nvml's
// mock servers implement it.
type NVML interface {
	SystemGetDriverVersion() (string, gonvml.Return)
	SystemGetCudaDriverVersion() (int, gonvml.Return)
}

// Detect returns the node's capabilities. host is the host's root file
// system (the plugin's /host mount, or a fake tree in tests); only
// sys/fs/cgroup is read from it. A node whose driver versions NVML cannot
// report is an error; a missing cgroup file only means no cgroup v2.
func Detect(lib NVML, host fs.FS) (api.Capabilities, error) {
	var c api.Capabilities
	v, ret := lib.SystemGetDriverVersion()
	if ret != gonvml.SUCCESS {
		return c, fmt.Errorf("nvml driver version: %s", gonvml.ErrorString(ret))
	}
	cuda, ret := lib.SystemGetCudaDriverVersion()
	if ret != gonvml.SUCCESS {
		return c, fmt.Errorf("nvml CUDA driver version: %s", gonvml.ErrorString(ret))
	}
	c.DriverVersion, c.CUDAVersion = v, CUDAVersion(cuda)
	major, err := DriverMajor(v)
	if err != nil {
		return c, err
	}
	c.MPSv3 = major >= MinMPSv3DriverMajor && cuda >= MinMPSv3CUDA

	b, err := fs.ReadFile(host, cgroupControllers)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil // cgroup v1 (or no cgroup fs): no partitioning either
	case err != nil:
		return c, fmt.Errorf("read %s: %w", cgroupControllers, err)
	}
	c.CgroupV2 = true
	for _, ctl := range strings.Fields(string(b)) {
		if ctl == "dmem" {
			c.MemoryPartitioning = api.MemoryPartitioningDMem
		}
	}
	if c.MemoryPartitioning == "" && c.MPSv3 {
		// NVIDIA's MPS v3 memory partitioning needs cgroup v2 and a v3
		// driver; without the kernel's dmem controller the driver uses
		// its own (misc) backend.
		c.MemoryPartitioning = api.MemoryPartitioningMisc
	}
	return c, nil
}

// DriverMajor returns the major number of a driver version ("615.12.03").
func DriverMajor(v string) (int, error) {
	head, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(head)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("driver version %q: not of the form MAJOR.MINOR", v)
	}
	return n, nil
}

// CUDAVersion formats NVML's CUDA driver version (13040) as "13.4".
func CUDAVersion(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }
