// Package mps owns gpuslice's NVIDIA MPS isolation on a node: the MPS control
// daemons (one per GPU, or one per node when multi-GPU containers must be
// served), their control-pipe client, the daemon-wide defaults that act as
// the per-client ceiling, the per-container limits (CUDA_MPS_PIPE_DIRECTORY,
// CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE and the
// mounts a container needs), the MPS client cap that bounds sharing slots,
// and the supervision of each daemon (probe, unhealthy, restart with backoff,
// healthy again).
//
// *Manager implements device.Isolator directly (no adapter). The device
// plugin drives it: it builds a Manager with an NVML-backed
// ComputeModeSetter, calls Start with the node's MPS GPUs, advertises
// Slots(g) sharing slots per GPU, withdraws a GPU while Healthy reports false
// (Events says when), and asks ContainerEdits for each container in Allocate.
//
// With Config.Version 3 (MPS v3, driver r615 / CUDA 13.4) each daemon runs
// one named server from a TOML file the package writes (v3.go), every
// container gets a namespace of its own whose limits are its share
// (ContainerEditsFor, device.PodReleaser) and only that namespace's socket
// directory mounted, namespaces of pods that no longer hold devices are
// deleted (ReleasePods), a restarted daemon gets its namespaces back from
// the TOML, and a plugin restart adopts the namespaces it finds. Where the
// node has memory partitioning, Config.HardLimits puts each started
// container's memory share on its cgroup as the kernel-enforced hard limit
// (LimitContainers, device.ContainerLimiter); only then do v3 GPUs enforce
// api.EnforcementBinding. v3.go names the NVIDIA pages each part follows.
//
// The control binary sits behind the Control interface: ExecControl runs the
// real nvidia-cuda-mps-control; tests run a fake executable.
//
// docs/mps.md describes the design, the multi-GPU choice and the security
// model (what the daemon defaults enforce and what they cannot).
package mps
