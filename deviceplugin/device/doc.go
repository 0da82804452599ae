// Package device owns the node side's shared vocabulary: the GPU record that
// discovery (deviceplugin/nvml) produces and every isolation mode receives,
// the HealthEvent that health sources (deviceplugin/health, isolation modes)
// report, what a container holds (ContainerDevice) and what an isolation
// mode adds to it (ContainerEdits, Mount), and the Isolator interface that
// an isolation mode (deviceplugin/mps today, a vGPU/VFIO mode next)
// implements directly. It is a leaf: it imports only package api.
package device
