package sysfs

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// uuidRE is the form the mdev core accepts (it parses any case; the fake
// keeps the lower-case form userspace tools write).
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// WriteFile implements FS, simulating the kernel's control files (see Fake).
func (f *Fake) WriteFile(p string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, Write{Path: p, Data: string(data)})
	if err, ok := f.writeErrs[p]; ok {
		return fmt.Errorf("write %s: %w", p, err)
	}
	val := strings.TrimSpace(string(data))
	fail := func(errno error) error { return fmt.Errorf("write %q to %s: %w", val, p, errno) }
	parts := strings.Split(p, "/")
	n := len(parts)
	pciDev := n >= 4 && parts[0] == "bus" && parts[1] == "pci" && parts[2] == "devices"
	var err error
	switch {
	case pciDev && n == 7 && parts[4] == "mdev_supported_types" && parts[6] == "create":
		err = f.createMdev(parts[3], parts[5], val)
	case n >= 2 && parts[n-1] == "remove" && f.mdevs[parts[n-2]] != nil:
		if val != "1" {
			return fail(syscall.EINVAL)
		}
		err = f.removeMdev(parts[n-2])
	case pciDev && n == 6 && parts[4] == "nvidia" && parts[5] == "current_vgpu_type":
		err = f.setVFType(parts[3], val)
	case pciDev && n == 6 && parts[4] == "driver" && parts[5] == "unbind":
		if val != parts[3] {
			return fail(syscall.ENODEV)
		}
		err = f.unbind(val)
	case n == 5 && strings.Join(parts[:3], "/") == "bus/pci/drivers" && parts[4] == "unbind":
		err = f.unbind(val)
	case n == 5 && strings.Join(parts[:3], "/") == "bus/pci/drivers" && parts[4] == "bind":
		err = f.bind(val, parts[3])
	case p == "bus/pci/drivers_probe":
		err = f.probe(val)
	case pciDev && n == 5 && parts[4] == "driver_override":
		if dev := f.devs[parts[3]]; dev != nil {
			dev.override = val
			if val == "" {
				dev.override = "(null)"
			}
			return f.attr(p, dev.override)
		}
		return f.root.WriteFile(p, data)
	default:
		return f.root.WriteFile(p, data)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

func (f *Fake) createMdev(bdf, typ, u string) error {
	dev := f.devs[bdf]
	if dev == nil {
		return syscall.ENOENT
	}
	i := slices.IndexFunc(dev.types, func(t MdevTypeSpec) bool { return t.ID == typ })
	if i < 0 {
		return syscall.ENOENT
	}
	if !uuidRE.MatchString(u) {
		return syscall.EINVAL
	}
	if f.mdevs[u] != nil {
		return syscall.EEXIST
	}
	if f.available(bdf, dev.types[i]) <= 0 {
		return syscall.EUSERS
	}
	g := f.nextGroup
	f.nextGroup++
	md := devDir(bdf) + "/" + u
	gd := "kernel/iommu_groups/" + strconv.Itoa(g)
	for _, step := range []func() error{
		func() error { return f.mkdir(md) },
		func() error { return f.attr(md+"/remove", "") },
		func() error { return f.link(md+"/mdev_type", "../mdev_supported_types/"+typ) },
		func() error { return f.mkdir(gd + "/devices") },
		func() error { return f.link(gd+"/devices/"+u, "../../../../"+md) },
		func() error { return f.link(md+"/iommu_group", "../../../../"+gd) },
		func() error { return f.link("bus/mdev/devices/"+u, "../../../"+md) },
		func() error {
			return f.link(devDir(bdf)+"/mdev_supported_types/"+typ+"/devices/"+u, "../../../"+u)
		},
	} {
		if err := step(); err != nil {
			return err
		}
	}
	f.mdevs[u] = &fakeMdev{parent: bdf, typ: typ, group: g}
	return f.renderAvailable(bdf)
}

func (f *Fake) removeMdev(u string) error {
	m := f.mdevs[u]
	gd := "kernel/iommu_groups/" + strconv.Itoa(m.group)
	for _, p := range []string{
		"bus/mdev/devices/" + u,
		devDir(m.parent) + "/mdev_supported_types/" + m.typ + "/devices/" + u,
		gd,
		devDir(m.parent) + "/" + u,
	} {
		if err := f.removeAll(p); err != nil {
			return err
		}
	}
	delete(f.mdevs, u)
	if f.devs[m.parent] == nil {
		return nil
	}
	return f.renderAvailable(m.parent)
}

// available is a type's available_instances on a GPU.
func (f *Fake) available(bdf string, t MdevTypeSpec) int {
	dev := f.devs[bdf]
	used := 0
	for _, m := range f.mdevs {
		if m.parent != bdf {
			continue
		}
		if m.typ != t.ID && !dev.spec.MixedTypes {
			return 0
		}
		if m.typ == t.ID {
			used++
		}
	}
	return max(t.Max-used, 0)
}

func (f *Fake) renderAvailable(bdf string) error {
	dev := f.devs[bdf]
	for _, t := range dev.types {
		p := devDir(bdf) + "/mdev_supported_types/" + t.ID + "/available_instances"
		if err := f.attr(p, strconv.Itoa(f.available(bdf, t))); err != nil {
			return err
		}
	}
	return nil
}

// creatable lists the types a free VF of pf may take now.
func (f *Fake) creatable(pf string) []VGPUTypeSpec {
	dev := f.devs[pf]
	count := map[int]int{}
	for _, vf := range dev.vfs {
		if t := f.devs[vf].vgpuType; t != 0 {
			count[t]++
		}
	}
	var out []VGPUTypeSpec
	for _, t := range dev.vgpuTypes {
		other := false
		for id := range count {
			other = other || id != t.ID
		}
		if (other && !dev.spec.MixedTypes) || count[t.ID] >= t.Max {
			continue
		}
		out = append(out, t)
	}
	return out
}

// renderVFs writes every VF's creatable_vgpu_types and current_vgpu_type.
// A VF that has a type lists just that type.
func (f *Fake) renderVFs(pf string) error {
	free := f.creatable(pf)
	for _, vf := range f.devs[pf].vfs {
		list := free
		cur := f.devs[vf].vgpuType
		if cur != 0 {
			i := slices.IndexFunc(f.devs[pf].vgpuTypes, func(t VGPUTypeSpec) bool { return t.ID == cur })
			list = f.devs[pf].vgpuTypes[i : i+1]
		}
		var b strings.Builder
		b.WriteString("ID    : vGPU Name\n")
		for _, t := range list {
			fmt.Fprintf(&b, "%-5d : %s\n", t.ID, t.Name)
		}
		vd := devDir(vf) + "/nvidia/"
		if err := f.attr(vd+"creatable_vgpu_types", b.String()); err != nil {
			return err
		}
		if err := f.attr(vd+"current_vgpu_type", strconv.Itoa(cur)); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fake) setVFType(vf, val string) error {
	dev := f.devs[vf]
	if dev == nil || dev.pf == "" {
		return syscall.ENOENT
	}
	id, err := strconv.Atoi(val)
	if err != nil || id < 0 {
		return syscall.EINVAL
	}
	switch {
	case id == 0:
		dev.vgpuType = 0
	case dev.vgpuType != 0:
		return syscall.EBUSY
	case !slices.ContainsFunc(f.creatable(dev.pf), func(t VGPUTypeSpec) bool { return t.ID == id }):
		return syscall.EINVAL
	default:
		dev.vgpuType = id
	}
	return f.renderVFs(dev.pf)
}

func (f *Fake) unbind(bdf string) error {
	dev := f.devs[bdf]
	if dev == nil || dev.spec.Driver == "" {
		return syscall.ENODEV
	}
	dev.spec.Driver = ""
	return f.renderDriver(bdf)
}

func (f *Fake) bind(bdf, drv string) error {
	dev := f.devs[bdf]
	if dev == nil {
		return syscall.ENODEV
	}
	if dev.spec.Driver != "" {
		return syscall.EBUSY
	}
	dev.spec.Driver = drv
	return f.renderDriver(bdf)
}

// probe binds a driverless device to its driver_override, or to nvidia.
func (f *Fake) probe(bdf string) error {
	dev := f.devs[bdf]
	if dev == nil {
		return syscall.ENODEV
	}
	if dev.spec.Driver != "" {
		return nil
	}
	drv := "nvidia"
	if dev.override != "(null)" {
		drv = dev.override
	}
	if err := f.addDriver(drv); err != nil {
		return err
	}
	dev.spec.Driver = drv
	return f.renderDriver(bdf)
}
