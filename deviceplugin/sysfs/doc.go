// Package sysfs is gpuslice's narrow window onto Linux sysfs: reading
// attributes, listing directories, reading links and writing control files,
// all relative to a configurable root (the host's /sys in production, a
// temporary directory in tests; never a hard-coded /sys).
//
// FS is the interface the vGPU code (deviceplugin/vgpu) programs against.
// Root is the real implementation over a directory. Fake is a test double
// that is a real directory tree served by a Root, plus a small simulation of
// what the kernel and the NVIDIA vGPU manager do when a control file is
// written: creating and removing vfio-mdev devices, setting an SR-IOV virtual
// function's vGPU type, unbinding and probing PCI drivers. Fake also lets a
// test overwrite any attribute with malformed content and inject read or
// write errors. fake.go builds the tree, fake_kernel.go simulates the
// control files, fake_faults.go injects faults and fake_tree.go writes the
// files and links.
//
// Paths given to FS are slash-separated and relative to the root, for
// example "bus/pci/devices/0000:41:00.0/mdev_supported_types". Links are
// never resolved against the host: callers read a link with Readlink and use
// its last element (the kernel's links name the target device, group or
// driver there), which works the same on the host and under a test root.
package sysfs
