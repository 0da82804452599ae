package app

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
	"github.com/gpuslice/gpuslice/deviceplugin/mps"
	"github.com/gpuslice/gpuslice/deviceplugin/nvml"
)

// TestHardLimits: MPS v3 gets a hard memory limiter only where the node has
// memory partitioning (cgroup v2 with dmem, or the driver's misc backend
// for NVML) and --mps-hard-limit is not off.
func TestHardLimits(t *testing.T) {
	dmemCaps := &api.Capabilities{MPSv3: true, CgroupV2: true, MemoryPartitioning: api.MemoryPartitioningDMem}
	miscCaps := &api.Capabilities{MPSv3: true, CgroupV2: true, MemoryPartitioning: api.MemoryPartitioningMisc}
	root := "/host/sys/fs/cgroup"
	tests := []struct {
		name    string
		mode    string
		caps    *api.Capabilities
		want    mps.HardLimiter
		wantErr string
	}{
		{name: "nvml on a dmem node", mode: HardLimitNVML, caps: dmemCaps, want: &dmem.Enforcer{Root: root, Limiter: nvml.MemoryLimits{}}},
		{name: "dmem file on a dmem node", mode: HardLimitDMemFile, caps: dmemCaps, want: &dmem.Enforcer{Root: root, Limiter: dmem.FileLimiter{Root: root}}},
		{name: "off", mode: HardLimitOff, caps: dmemCaps},
		{name: "nvml on the driver's misc backend", mode: HardLimitNVML, caps: miscCaps, want: &dmem.Enforcer{Root: root, Limiter: nvml.MemoryLimits{}}},
		{name: "dmem file on the misc backend: no files to write", mode: HardLimitDMemFile, caps: miscCaps},
		{name: "cgroup v2 without partitioning", mode: HardLimitNVML, caps: &api.Capabilities{CgroupV2: true}},
		{name: "capabilities unknown", mode: HardLimitNVML},
		{name: "unknown mode", mode: "kernel", caps: dmemCaps, wantErr: `--mps-hard-limit "kernel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			o.HostRoot, o.MPSHardLimit, o.Plugin.Capabilities = "/host", tt.mode, tt.caps
			got, err := o.hardLimits(nil)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hard limiter (-want +got):\n%s", diff)
			}
		})
	}
}
