package nvml

import (
	"context"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin/dmem"
)

// limitsLib is one GPU whose memory limits per cgroup live in a map.
func limitsLib(limits map[string][2]uint64, setRet gonvml.Return) *mock.Interface {
	dev := &mock.Device{
		SetMemoryLimits_v1Func: func(ns string, soft, hard uint64) gonvml.Return {
			if setRet != gonvml.SUCCESS {
				return setRet
			}
			limits[ns] = [2]uint64{soft, hard}
			return gonvml.SUCCESS
		},
		GetMemoryLimits_v1Func: func(ns string) (gonvml.MemoryLimits_v1, gonvml.Return) {
			l, ok := limits[ns]
			if !ok {
				return gonvml.MemoryLimits_v1{NameSpace: ns, HardLimit: gonvml.DEVICE_MEMORY_LIMIT_MAX}, gonvml.SUCCESS
			}
			return gonvml.MemoryLimits_v1{NameSpace: ns, SoftLimit: l[0], HardLimit: l[1]}, gonvml.SUCCESS
		},
	}
	return &mock.Interface{DeviceGetHandleByUUIDFunc: func(uuid string) (gonvml.Device, gonvml.Return) {
		if uuid != "GPU-a" {
			return nil, gonvml.ERROR_NOT_FOUND
		}
		return dev, gonvml.SUCCESS
	}}
}

func TestMemoryLimits(t *testing.T) {
	ctx := context.Background()
	limits := map[string][2]uint64{}
	l := MemoryLimits{Lib: limitsLib(limits, gonvml.SUCCESS)}
	gpu := dmem.GPU{UUID: "GPU-a", PCIBusID: "0000:07:00.0"}
	dir := "/host/sys/fs/cgroup/kubepods/podx/abc"
	if _, ok, err := l.HardLimit(ctx, dir, gpu); err != nil || ok {
		t.Fatalf("HardLimit before = ok %v, %v; want unlimited", ok, err)
	}
	if err := l.SetHardLimit(ctx, dir, gpu, 4<<30); err != nil {
		t.Fatal(err)
	}
	// The full cgroup path as the nameSpace, soft limit 0.
	if diff := cmp.Diff(map[string][2]uint64{dir: {0, 4 << 30}}, limits); diff != "" {
		t.Errorf("NVML limits (-want +got):\n%s", diff)
	}
	if got, ok, err := l.HardLimit(ctx, dir, gpu); err != nil || !ok || got != 4<<30 {
		t.Errorf("HardLimit = %d, %v, %v; want 4 GiB", got, ok, err)
	}
	if err := l.SetHardLimit(ctx, dir, dmem.GPU{UUID: "GPU-x"}, 1); err == nil || !strings.Contains(err.Error(), "DeviceGetHandleByUUID") {
		t.Errorf("unknown GPU: error %v", err)
	}
	denied := MemoryLimits{Lib: limitsLib(map[string][2]uint64{}, gonvml.ERROR_NO_PERMISSION)}
	if err := denied.SetHardLimit(ctx, dir, gpu, 1); err == nil || !strings.Contains(err.Error(), "SetMemoryLimits_v1") {
		t.Errorf("refused by NVML: error %v", err)
	}
}
