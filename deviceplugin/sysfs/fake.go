package sysfs

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// Fake is a sysfs tree for tests: a real directory laid out as the kernel
// lays out /sys for PCI devices, vfio-mdev devices and IOMMU groups, served
// by a Root, with the kernel's reaction to control-file writes simulated in
// WriteFile. Build it with NewFake and the Add* methods; tests then drive it
// only through FS, as production code drives /sys.
//
// Simulated control files:
//   - bus/pci/devices/<bdf>/mdev_supported_types/<type>/create: a UUID
//     creates bus/mdev/devices/<uuid> (mdev_type and iommu_group links, a
//     remove file) and updates available_instances;
//   - <mdev>/remove: "1" removes the mdev;
//   - bus/pci/devices/<vf>/nvidia/current_vgpu_type: a type ID from
//     creatable_vgpu_types sets the VF's vGPU type, "0" clears it;
//   - bus/pci/devices/<bdf>/driver/unbind, bus/pci/drivers/<drv>/unbind and
//     bind, bus/pci/drivers_probe (which honours driver_override).
//
// Unless a GPU is added with MixedTypes, it behaves as NVIDIA's vGPU
// manager without mixed-type support: once one type has an instance on a
// GPU, every other type of that GPU has no available instances.
//
// Tests inject faults with SetFile (any content, malformed included),
// RemoveFile, FailRead and FailWrite. Writes lists every write attempted.
type Fake struct {
	root *Root

	mu        sync.Mutex
	devs      map[string]*fakeDev
	mdevs     map[string]*fakeMdev
	nextGroup int
	readErrs  map[string]error
	writeErrs map[string]error
	writes    []Write
}

var (
	_ FS = (*Root)(nil)
	_ FS = (*Fake)(nil)
)

// Write is one write to the Fake.
type Write struct {
	Path, Data string
}

// DeviceSpec describes a PCI device for the Fake.
type DeviceSpec struct {
	// BDF is the PCI address, "0000:41:00.0".
	BDF string
	// Vendor, Device and Class are the PCI ids as sysfs prints them;
	// defaults 0x10de, 0x1eb8 (Tesla T4) and 0x030200 (3D controller).
	Vendor, Device, Class string
	// Driver is the bound driver; "" means none.
	Driver string
	// IOMMUGroup is the device's group; 0 assigns a fresh one.
	IOMMUGroup int
	// NUMANode is the device's NUMA node.
	NUMANode int
	// MixedTypes lets vGPU instances of different types share the GPU.
	MixedTypes bool
}

// MdevTypeSpec describes a vfio-mdev type of a GPU for the Fake.
type MdevTypeSpec struct {
	// ID is the type's directory name, "nvidia-222".
	ID string
	// Name, Description and DeviceAPI are the attributes' content.
	Name, Description, DeviceAPI string
	// Max is the instance count on an otherwise empty GPU.
	Max int
}

// VGPUTypeSpec describes an SR-IOV vGPU type of a GPU for the Fake.
type VGPUTypeSpec struct {
	ID   int
	Name string
	// Max is how many VFs of the GPU may have this type at once.
	Max int
}

type fakeDev struct {
	spec      DeviceSpec
	override  string
	types     []MdevTypeSpec
	vgpuTypes []VGPUTypeSpec
	vfs       []string // VF BDFs of a PF
	pf        string   // PF BDF of a VF
	vgpuType  int      // a VF's current_vgpu_type
}

type fakeMdev struct {
	parent, typ string
	group       int
}

// NewFake lays out an empty sysfs tree in dir, which must be an existing,
// absolute directory (t.TempDir()).
func NewFake(dir string) (*Fake, error) {
	r, err := NewRoot(dir)
	if err != nil {
		return nil, err
	}
	f := &Fake{
		root:      r,
		devs:      map[string]*fakeDev{},
		mdevs:     map[string]*fakeMdev{},
		nextGroup: 100,
		readErrs:  map[string]error{},
		writeErrs: map[string]error{},
	}
	for _, d := range []string{"bus/pci/devices", "bus/mdev/devices", "kernel/iommu_groups", "devices/pci0000:00"} {
		if err := f.mkdir(d); err != nil {
			return nil, err
		}
	}
	for _, drv := range []string{"nvidia", "vfio-pci"} {
		if err := f.addDriver(drv); err != nil {
			return nil, err
		}
	}
	if err := f.attr("bus/pci/drivers_probe", ""); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir returns the tree's root directory.
func (f *Fake) Dir() string { return f.root.Dir() }

// AddDevice adds a PCI device.
func (f *Fake) AddDevice(s DeviceSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addDevice(s)
}

func (f *Fake) addDevice(s DeviceSpec) error {
	if _, ok := f.devs[s.BDF]; ok || s.BDF == "" {
		return fmt.Errorf("fake sysfs: device %q exists or is empty", s.BDF)
	}
	if s.Vendor == "" {
		s.Vendor = "0x10de"
	}
	if s.Device == "" {
		s.Device = "0x1eb8"
	}
	if s.Class == "" {
		s.Class = "0x030200"
	}
	if s.IOMMUGroup == 0 {
		s.IOMMUGroup = f.nextGroup
		f.nextGroup++
	}
	if s.Driver != "" {
		if err := f.addDriver(s.Driver); err != nil {
			return err
		}
	}
	d := devDir(s.BDF)
	if err := f.mkdir(d); err != nil {
		return err
	}
	for name, v := range map[string]string{
		"vendor": s.Vendor, "device": s.Device, "class": s.Class,
		"numa_node": strconv.Itoa(s.NUMANode), "driver_override": "(null)",
	} {
		if err := f.attr(d+"/"+name, v); err != nil {
			return err
		}
	}
	g := "kernel/iommu_groups/" + strconv.Itoa(s.IOMMUGroup)
	if err := f.mkdir(g + "/devices"); err != nil {
		return err
	}
	if err := f.link(g+"/devices/"+s.BDF, "../../../../"+d); err != nil {
		return err
	}
	if err := f.link(d+"/iommu_group", "../../../"+g); err != nil {
		return err
	}
	if err := f.link("bus/pci/devices/"+s.BDF, "../../../"+d); err != nil {
		return err
	}
	f.devs[s.BDF] = &fakeDev{spec: s, override: "(null)"}
	return f.renderDriver(s.BDF)
}

// AddMdevType gives a GPU a vfio-mdev type (as the NVIDIA vGPU manager does
// for pre-Ada GPUs).
func (f *Fake) AddMdevType(bdf string, t MdevTypeSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dev, ok := f.devs[bdf]
	if !ok {
		return fmt.Errorf("fake sysfs: no device %s", bdf)
	}
	if t.DeviceAPI == "" {
		t.DeviceAPI = "vfio-pci"
	}
	td := devDir(bdf) + "/mdev_supported_types/" + t.ID
	if err := f.mkdir(td + "/devices"); err != nil {
		return err
	}
	for name, v := range map[string]string{"name": t.Name, "description": t.Description, "device_api": t.DeviceAPI, "create": ""} {
		if err := f.attr(td+"/"+name, v); err != nil {
			return err
		}
	}
	dev.types = append(dev.types, t)
	return f.renderAvailable(bdf)
}

// EnableSRIOV gives the GPU pf numVFs virtual functions (as sriov-manage -e
// does on Ada, Hopper and Blackwell), each offering types, and returns the
// VFs' addresses. VF i is function 4+i of the PF's bus, counting on into the
// next device numbers.
func (f *Fake) EnableSRIOV(pf string, numVFs int, types []VGPUTypeSpec) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dev, ok := f.devs[pf]
	if !ok || len(pf) != len("0000:00:00.0") {
		return nil, fmt.Errorf("fake sysfs: no device %s", pf)
	}
	dev.vgpuTypes = slices.Clone(types)
	pd := devDir(pf)
	for _, kv := range [][2]string{{"sriov_totalvfs", strconv.Itoa(numVFs)}, {"sriov_numvfs", strconv.Itoa(numVFs)}} {
		if err := f.attr(pd+"/"+kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	for i := range numVFs {
		n := 4 + i
		vf := fmt.Sprintf("%s:%02x.%d", pf[:7], n/8, n%8)
		if err := f.addDevice(DeviceSpec{BDF: vf, Vendor: dev.spec.Vendor, Device: dev.spec.Device,
			Class: dev.spec.Class, Driver: "nvidia", NUMANode: dev.spec.NUMANode}); err != nil {
			return nil, err
		}
		f.devs[vf].pf = pf
		dev.vfs = append(dev.vfs, vf)
		vd := devDir(vf)
		if err := f.link(vd+"/physfn", "../"+pf); err != nil {
			return nil, err
		}
		if err := f.link(pd+"/virtfn"+strconv.Itoa(i), "../"+vf); err != nil {
			return nil, err
		}
		if err := f.mkdir(vd + "/nvidia"); err != nil {
			return nil, err
		}
		if err := f.attr(vd+"/nvidia/current_vgpu_type", "0"); err != nil {
			return nil, err
		}
	}
	return slices.Clone(dev.vfs), f.renderVFs(pf)
}

// RemoveDevice takes a device off the bus as a surprise removal or a GPU
// that fell off the bus does: its directory, its mdevs and VFs, and every
// link to them disappear.
func (f *Fake) RemoveDevice(bdf string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removeDevice(bdf)
}

func (f *Fake) removeDevice(bdf string) error {
	dev, ok := f.devs[bdf]
	if !ok {
		return fmt.Errorf("fake sysfs: no device %s", bdf)
	}
	for _, vf := range slices.Clone(dev.vfs) {
		if err := f.removeDevice(vf); err != nil {
			return err
		}
	}
	for _, u := range f.sortedMdevs() {
		if f.mdevs[u].parent == bdf {
			if err := f.removeMdev(u); err != nil {
				return err
			}
		}
	}
	g := "kernel/iommu_groups/" + strconv.Itoa(dev.spec.IOMMUGroup)
	for _, p := range []string{"bus/pci/devices/" + bdf, g + "/devices/" + bdf, devDir(bdf)} {
		if err := f.removeAll(p); err != nil {
			return err
		}
	}
	if dev.pf != "" {
		if pf, ok := f.devs[dev.pf]; ok {
			pf.vfs = slices.DeleteFunc(pf.vfs, func(v string) bool { return v == bdf })
		}
	}
	delete(f.devs, bdf)
	return nil
}
