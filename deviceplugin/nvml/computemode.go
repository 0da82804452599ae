package nvml

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ComputeModes sets GPU compute modes through NVML; it implements the MPS
// manager's ComputeModeSetter and ComputeModeRestorer.
type ComputeModes struct{ Lib Library }

func (c ComputeModes) set(uuid string, mode gonvml.ComputeMode) error {
	dev, ret := c.Lib.DeviceGetHandleByUUID(uuid)
	if err := nvErr("DeviceGetHandleByUUID", ret); err != nil {
		return err
	}
	return nvErr("SetComputeMode", dev.SetComputeMode(mode))
}

// SetExclusiveProcess puts the GPU in EXCLUSIVE_PROCESS compute mode.
func (c ComputeModes) SetExclusiveProcess(uuid string) error {
	return c.set(uuid, gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS)
}

// SetDefault puts the GPU back in DEFAULT compute mode.
func (c ComputeModes) SetDefault(uuid string) error {
	return c.set(uuid, gonvml.COMPUTEMODE_DEFAULT)
}
