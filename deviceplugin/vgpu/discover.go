package vgpu

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

// Discover reads the node's NVIDIA GPUs, their vGPU types and instances,
// virtual functions and IOMMU groups from f. It fails only when the PCI
// device list itself cannot be read; what cannot be read about one GPU is
// that GPU's Err, and what belongs to no GPU is in Node.Errs.
func Discover(ctx context.Context, f sysfs.FS) (*Node, error) {
	names, err := f.ReadDir(pciDevices)
	if err != nil {
		return nil, fmt.Errorf("discover GPUs: %w", err)
	}
	n := &Node{}
	for _, bdf := range names {
		if !ValidBDF(bdf) {
			n.Errs = append(n.Errs, fmt.Errorf("%s/%s: not a PCI address", pciDevices, bdf))
			continue
		}
		isGPU, err := isNVIDIAGPU(f, bdf)
		if err != nil {
			n.Errs = append(n.Errs, err)
			continue
		}
		if !isGPU {
			continue
		}
		g := GPU{Index: len(n.GPUs), BDF: bdf}
		g.Err = readGPU(f, &g)
		n.GPUs = append(n.GPUs, g)
	}
	if err := readMdevs(f, n); err != nil {
		n.Errs = append(n.Errs, err)
	}
	klog.FromContext(ctx).V(4).Info("Discovered vGPU state", "gpus", len(n.GPUs), "errors", len(n.Errs))
	return n, nil
}

// isNVIDIAGPU says whether bdf is an NVIDIA display controller and a
// physical function (VFs are read under their PF).
func isNVIDIAGPU(f sysfs.FS, bdf string) (bool, error) {
	vendor, err := readHex(f, devPath(bdf, "vendor"))
	if err != nil || vendor != nvidiaVendor {
		return false, err
	}
	class, err := readHex(f, devPath(bdf, "class"))
	if err != nil || class>>16 != classDisplay {
		return false, err
	}
	_, isVF, err := linkedBDF(f, devPath(bdf, "physfn"))
	return !isVF, err
}

func readGPU(f sysfs.FS, g *GPU) error {
	dir := devPath(g.BDF)
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	id, err := readHex(f, dir+"/device")
	keep(err)
	g.DeviceID = fmt.Sprintf("0x%04x", id)
	g.Driver, err = driver(f, dir)
	keep(err)
	g.IOMMUGroup, err = iommuGroup(f, dir)
	keep(err)
	if s, err := sysfs.ReadString(f, dir+"/numa_node"); err == nil {
		if g.NUMANode, err = strconv.Atoi(s); err != nil {
			keep(fmt.Errorf("%s/numa_node: %q is not a number", dir, s))
		}
	}
	keep(readMdevTypes(f, g))
	keep(readVFs(f, g))
	switch {
	case len(g.MdevTypes) > 0:
		g.Flavour = FlavourMdev
	case slices.ContainsFunc(g.VFs, func(vf VF) bool { return vf.VGPU }):
		g.Flavour = FlavourSRIOV
	default:
		g.Flavour = FlavourNone
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("GPU %s: %w", g.BDF, err)
	}
	return nil
}

func readMdevTypes(f sysfs.FS, g *GPU) error {
	dir := devPath(g.BDF, "mdev_supported_types")
	ids, err := readDirIfExists(f, dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		t, err := readMdevType(f, dir, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		g.MdevTypes = append(g.MdevTypes, t)
	}
	return errors.Join(errs...)
}

func readMdevType(f sysfs.FS, dir, id string) (MdevType, error) {
	if _, err := sysfs.Join(id); err != nil {
		return MdevType{}, fmt.Errorf("%s: %w", dir, err)
	}
	td := dir + "/" + id
	t := MdevType{ID: id}
	var err error
	if t.Name, err = sysfs.ReadString(f, td+"/name"); err != nil {
		return MdevType{}, err
	}
	if t.Description, err = sysfs.ReadString(f, td+"/description"); err != nil {
		return MdevType{}, err
	}
	if t.DeviceAPI, err = sysfs.ReadString(f, td+"/device_api"); err != nil {
		return MdevType{}, err
	}
	if t.Available, err = readCount(f, td+"/available_instances"); err != nil {
		return MdevType{}, err
	}
	d, err := ParseMdevDescription(t.Description)
	if err != nil {
		return MdevType{}, fmt.Errorf("%s/description: %w", td, err)
	}
	t.MaxInstances, t.FramebufferMiB = d.MaxInstance, d.FramebufferMiB
	if t.FramebufferMiB == 0 {
		t.FramebufferMiB, _ = FramebufferFromTypeName(t.Name)
	}
	return t, nil
}

func readVFs(f sysfs.FS, g *GPU) error {
	dir := devPath(g.BDF)
	names, err := f.ReadDir(dir)
	if err != nil {
		return err
	}
	byID := map[int]VGPUType{}
	var errs []error
	for _, name := range names {
		num, ok := strings.CutPrefix(name, "virtfn")
		if !ok {
			continue
		}
		idx, err := parseCount(num)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", dir, name, err))
			continue
		}
		vf, err := readVF(f, dir+"/"+name, idx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range vf.Creatable {
			byID[t.ID] = t
		}
		g.VFs = append(g.VFs, vf)
	}
	slices.SortFunc(g.VFs, func(a, b VF) int { return a.Index - b.Index })
	for _, t := range byID {
		g.SRIOVTypes = append(g.SRIOVTypes, t)
	}
	slices.SortFunc(g.SRIOVTypes, func(a, b VGPUType) int { return a.ID - b.ID })
	return errors.Join(errs...)
}

func readVF(f sysfs.FS, link string, idx int) (VF, error) {
	bdf, ok, err := linkedBDF(f, link)
	if err != nil {
		return VF{}, err
	}
	if !ok {
		return VF{}, fmt.Errorf("%s: missing", link)
	}
	vf := VF{BDF: bdf, Index: idx}
	dir := devPath(bdf)
	if vf.Driver, err = driver(f, dir); err != nil {
		return VF{}, err
	}
	if vf.IOMMUGroup, err = iommuGroup(f, dir); err != nil {
		return VF{}, err
	}
	if vf.VGPU, err = f.Exists(dir + "/nvidia/current_vgpu_type"); err != nil || !vf.VGPU {
		return vf, err
	}
	if vf.CurrentType, err = readCount(f, dir+"/nvidia/current_vgpu_type"); err != nil {
		return VF{}, err
	}
	b, err := f.ReadFile(dir + "/nvidia/creatable_vgpu_types")
	if err != nil {
		return VF{}, err
	}
	if vf.Creatable, err = ParseCreatableTypes(string(b)); err != nil {
		return VF{}, fmt.Errorf("%s/nvidia/creatable_vgpu_types: %w", dir, err)
	}
	return vf, nil
}

// readMdevs attributes every mdev under bus/mdev/devices to its parent GPU.
// mdevs of parents that are not NVIDIA GPUs (another vendor's) are ignored.
func readMdevs(f sysfs.FS, n *Node) error {
	uuids, err := readDirIfExists(f, mdevDevices)
	if err != nil {
		return err
	}
	for _, u := range uuids {
		link := mdevDevices + "/" + u
		target, err := f.Readlink(link)
		if err != nil {
			n.Errs = append(n.Errs, err)
			continue
		}
		parent := path.Base(path.Dir(strings.TrimRight(target, "/")))
		g, ok := n.GPU(parent)
		if !ok {
			continue
		}
		m, err := readMdev(f, link, u, parent)
		if err != nil {
			g.Err = errors.Join(g.Err, fmt.Errorf("GPU %s: %w", parent, err))
			continue
		}
		if _, ok := g.mdevType(m.Type); !ok {
			g.Err = errors.Join(g.Err, fmt.Errorf("GPU %s: mdev %s has type %q, which the GPU does not list", parent, u, m.Type))
			continue
		}
		g.Mdevs = append(g.Mdevs, m)
	}
	return nil
}

func readMdev(f sysfs.FS, link, u, parent string) (Mdev, error) {
	if !ValidUUID(u) {
		return Mdev{}, fmt.Errorf("%s: not a UUID", link)
	}
	typ, ok, err := sysfs.LinkBase(f, link+"/mdev_type")
	if err == nil && !ok {
		err = fmt.Errorf("%s/mdev_type: missing", link)
	}
	if err != nil {
		return Mdev{}, err
	}
	group, err := iommuGroup(f, link)
	if err == nil && group == "" {
		err = fmt.Errorf("%s/iommu_group: missing", link)
	}
	if err != nil {
		return Mdev{}, err
	}
	return Mdev{UUID: u, Parent: parent, Type: typ, IOMMUGroup: group}, nil
}

// readDirIfExists lists dir, or returns nothing when dir does not exist
// (a kernel without the feature).
func readDirIfExists(f sysfs.FS, dir string) ([]string, error) {
	ok, err := f.Exists(dir)
	if err != nil || !ok {
		return nil, err
	}
	return f.ReadDir(dir)
}
