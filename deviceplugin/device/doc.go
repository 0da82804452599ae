// Package device owns the node side's shared vocabulary: the GPU record that
// discovery (deviceplugin/nvml, deviceplugin/vgpu) produces and every
// isolation mode receives, the HealthEvent that health sources
// (deviceplugin/health, isolation modes) report, what a container holds
// (ContainerDevice) and what an isolation mode adds to it (ContainerEdits,
// Mount, DeviceNode), and the Isolator interface with its optional hooks
// (ContainerGPULimiter, WholeInstancer, ProblemReporter, PodReleaser,
// EnforcementReporter) that the isolation modes (deviceplugin/mps,
// deviceplugin/vgpu) implement directly. It is a leaf: it imports only
// package api.
package device
