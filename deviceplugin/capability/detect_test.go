package capability

import (
	"strings"
	"testing"
	"testing/fstest"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
)

func lib(driver string, cuda int) *mock.Interface {
	return &mock.Interface{
		SystemGetDriverVersionFunc:     func() (string, gonvml.Return) { return driver, gonvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, gonvml.Return) { return cuda, gonvml.SUCCESS },
	}
}

func TestDetect(t *testing.T) {
	v2 := func(controllers string) fstest.MapFS {
		return fstest.MapFS{cgroupControllers: {Data: []byte(controllers + "\n")}}
	}
	tests := []struct {
		name    string
		lib     NVML
		host    fstest.MapFS
		want    api.Capabilities
		wantErr string
	}{
		{
			name: "r615 with dmem", lib: lib("615.12.03", 13040), host: v2("cpuset cpu io memory dmem pids"),
			want: api.Capabilities{DriverVersion: "615.12.03", CUDAVersion: "13.4", MPSv3: true, CgroupV2: true, MemoryPartitioning: api.MemoryPartitioningDMem},
		},
		{
			name: "r615 without dmem: the driver's misc backend", lib: lib("615.12.03", 13040), host: v2("cpuset cpu io memory pids"),
			want: api.Capabilities{DriverVersion: "615.12.03", CUDAVersion: "13.4", MPSv3: true, CgroupV2: true, MemoryPartitioning: api.MemoryPartitioningMisc},
		},
		{
			name: "r615 on cgroup v1: no partitioning", lib: lib("615.12.03", 13040), host: fstest.MapFS{},
			want: api.Capabilities{DriverVersion: "615.12.03", CUDAVersion: "13.4", MPSv3: true},
		},
		{
			name: "new driver, old CUDA", lib: lib("615.01", 13020), host: v2("memory"),
			want: api.Capabilities{DriverVersion: "615.01", CUDAVersion: "13.2", CgroupV2: true},
		},
		{
			name: "legacy driver on cgroup v1", lib: lib("550.54.15", 12040), host: fstest.MapFS{},
			want: api.Capabilities{DriverVersion: "550.54.15", CUDAVersion: "12.4"},
		},
		{
			name: "go-nvml's DGX A100 mock", lib: dgxa100.New(), host: fstest.MapFS{},
			want: api.Capabilities{DriverVersion: "550.54.15", CUDAVersion: "12.4"},
		},
		{name: "garbage driver version", lib: lib("banana", 13040), host: fstest.MapFS{}, wantErr: `driver version "banana"`},
		{
			name: "NVML fails", host: fstest.MapFS{}, wantErr: "nvml driver version",
			lib: &mock.Interface{SystemGetDriverVersionFunc: func() (string, gonvml.Return) { return "", gonvml.ERROR_UNINITIALIZED }},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.lib, tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("detected capabilities do not validate: %v", err)
			}
		})
	}
}
