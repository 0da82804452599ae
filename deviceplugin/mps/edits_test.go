package mps

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// dev is one GPU of a container: UUID, host and container index, memory
// limit in MiB and thread percentage.
func dev(uuid string, host, ctr int, mem int64, threads int) device.ContainerDevice {
	return device.ContainerDevice{UUID: uuid, HostIndex: host, ContainerIndex: ctr, MemLimitMiB: mem, ThreadPercentage: threads}
}

// legacyEdits is what a legacy MPS container gets from the daemon whose
// directory is dir, under the default container pipe directory: limits mem
// (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT) and threads, the pipe and shm mounts.
func legacyEdits(dir, mem, threads string) *device.ContainerEdits {
	return &device.ContainerEdits{
		Envs: map[string]string{
			EnvPipeDirectory:          DefaultContainerPipeDir,
			EnvPinnedDeviceMemLimit:   mem,
			EnvActiveThreadPercentage: threads,
		},
		Mounts: []device.Mount{
			{ContainerPath: DefaultContainerPipeDir, HostPath: filepath.Join(dir, "pipe")},
			{ContainerPath: containerShmDir, HostPath: filepath.Join(dir, "shm")},
		},
	}
}

func TestContainerEdits(t *testing.T) {
	fake := buildFake(t)
	type setup struct {
		name string
		cfg  Config
	}
	envs := map[string]*env{}
	for _, s := range []setup{
		{name: "gpu", cfg: Config{DefaultActiveThreadPercentage: 30}},
		{name: "node", cfg: Config{Scope: ScopeNode, DefaultActiveThreadPercentage: 30}},
		{name: "node-ro-noshm-ceiling", cfg: Config{Scope: ScopeNode, ReadOnlyPipeMount: true, DevShm: ShmNone, MaxClientMemoryPercent: 25, MaxClientThreadPercentage: 50, ContainerPipeDir: "/mps"}},
	} {
		e := newEnv(t, fake, s.cfg)
		e.start(gpuA(), gpuB())
		envs[s.name] = e
	}
	root := func(name string) string { return envs[name].root }

	tests := []struct {
		name    string
		env     string
		devs    []device.ContainerDevice
		want    *device.ContainerEdits
		wantErr string
	}{
		{
			name: "single GPU with core share",
			env:  "gpu",
			devs: []device.ContainerDevice{dev("GPU-bbbb", 1, 0, 4096, 25)},
			want: legacyEdits(filepath.Join(root("gpu"), "GPU-bbbb"), "0=4096M", "25"),
		},
		{
			name: "single GPU without core share gets the default",
			env:  "gpu",
			devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 1024, 0)},
			want: legacyEdits(filepath.Join(root("gpu"), "GPU-aaaa"), "0=1024M", "30"),
		},
		{
			name: "two GPUs in node scope: a limit per GPU, by container index",
			env:  "node",
			devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 1, 4096, 50), dev("GPU-bbbb", 1, 0, 2048, 50)},
			want: legacyEdits(filepath.Join(root("node"), "node"), "0=2048M,1=4096M", "50"),
		},
		{
			name: "uneven core shares: the smallest (one value per process)",
			env:  "node",
			devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 4096, 60), dev("GPU-bbbb", 1, 1, 4096, 40)},
			want: legacyEdits(filepath.Join(root("node"), "node"), "0=4096M,1=4096M", "40"),
		},
		{
			name: "read-only pipe mount, no shm, own container dir",
			env:  "node-ro-noshm-ceiling",
			devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 20480, 50)},
			want: &device.ContainerEdits{
				Envs: map[string]string{
					"CUDA_MPS_PIPE_DIRECTORY":           "/mps",
					"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT":  "0=20480M",
					"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "50",
				},
				Mounts: []device.Mount{{ContainerPath: "/mps", HostPath: filepath.Join(root("node-ro-noshm-ceiling"), "node", "pipe"), ReadOnly: true}},
			},
		},
		{name: "no devices", env: "gpu", wantErr: "no devices"},
		{name: "zero memory", env: "gpu", devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 0, 0)},
			wantErr: "GPU GPU-aaaa: memory limit 0 MiB must be positive"},
		{name: "memory above the GPU", env: "gpu", devs: []device.ContainerDevice{dev("GPU-bbbb", 1, 0, 40961, 0)},
			wantErr: "exceeds the GPU's 40960 MiB"},
		{name: "memory above the daemon ceiling", env: "node-ro-noshm-ceiling", devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 20481, 0)},
			wantErr: "exceeds the MPS per-client ceiling of 20480 MiB (25% of the GPU)"},
		{name: "percentage above 100", env: "gpu", devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 1024, 101)},
			wantErr: "GPU GPU-aaaa: thread percentage 101 must be within 0..100"},
		{name: "percentage above the daemon ceiling", env: "node-ro-noshm-ceiling", devs: []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 1024, 60)},
			wantErr: "thread percentage 60 exceeds the MPS per-client ceiling of 50"},
		{name: "unknown GPU", env: "gpu", devs: []device.ContainerDevice{dev("GPU-cccc", 0, 0, 1024, 0)},
			wantErr: `unknown GPU "GPU-cccc": not managed by MPS on this node`},
		{
			name:    "two GPUs in gpu scope",
			env:     "gpu",
			devs:    []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 1024, 0), dev("GPU-bbbb", 1, 1, 1024, 0)},
			wantErr: `GPUs GPU-aaaa and GPU-bbbb are served by different MPS control daemons (scope "gpu")`,
		},
		{
			name:    "duplicate container index",
			env:     "node",
			devs:    []device.ContainerDevice{dev("GPU-aaaa", 0, 0, 1024, 0), dev("GPU-bbbb", 1, 0, 1024, 0)},
			wantErr: "container index 0 is negative or used twice",
		},
		{name: "host index mismatch", env: "gpu", devs: []device.ContainerDevice{dev("GPU-aaaa", 3, 0, 1024, 0)},
			wantErr: "host index 3, but the GPU has index 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envs[tt.env].m.ContainerEdits(tt.devs)
			if !errorMatches(t, err, tt.wantErr) {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ContainerEdits (-want +got):\n%s", diff)
			}
		})
	}
}
