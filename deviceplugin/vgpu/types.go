package vgpu

// Flavour is how a GPU offers vGPU instances.
type Flavour string

const (
	// FlavourNone means no vGPU (no vGPU manager, or the GPU is bound to
	// vfio-pci for passthrough).
	FlavourNone Flavour = "none"
	// FlavourMdev means vfio-mdev types under the GPU's PCI device (pre-Ada).
	FlavourMdev Flavour = "mdev"
	// FlavourSRIOV means SR-IOV virtual functions with nvidia/current_vgpu_type
	// (Ada, Hopper, Blackwell).
	FlavourSRIOV Flavour = "sriov"
)

// VFIODriver is the driver a passthrough GPU is bound to.
const VFIODriver = "vfio-pci"

// MdevType is one entry of a GPU's mdev_supported_types.
type MdevType struct {
	// ID is the type's directory name, "nvidia-222".
	ID string
	// Name is the vGPU type's name, "GRID T4-4Q".
	Name        string
	Description string
	DeviceAPI   string
	// Available is available_instances: how many more can be created now.
	Available int
	// MaxInstances is the description's max_instance, 0 when absent.
	MaxInstances int
	// FramebufferMiB is the instance's framebuffer, from the description's
	// framebuffer= or else from the name; 0 when neither says.
	FramebufferMiB int64
}

// Mdev is a mediated device.
type Mdev struct {
	UUID string
	// Parent is the GPU's PCI address, Type the mdev type's ID.
	Parent, Type string
	IOMMUGroup   string
}

// VGPUType is an SR-IOV vGPU type, one line of creatable_vgpu_types.
type VGPUType struct {
	ID   int
	Name string
	// FramebufferMiB is from the name; 0 when the name does not say.
	FramebufferMiB int64
}

// VF is an SR-IOV virtual function of a GPU.
type VF struct {
	// BDF is the VF's PCI address; Index its N in the PF's virtfnN.
	BDF        string
	Index      int
	IOMMUGroup string
	Driver     string
	// VGPU says whether the VF has the NVIDIA vGPU interface (nvidia/).
	VGPU bool
	// CurrentType is current_vgpu_type, 0 for none.
	CurrentType int
	// Creatable is creatable_vgpu_types now.
	Creatable []VGPUType
}

// GPU is an NVIDIA GPU (a physical function) as sysfs shows it.
type GPU struct {
	// Index is the GPU's position among the node's NVIDIA GPUs in PCI
	// address order (nvidia-smi's default order when all are on nvidia).
	Index int
	BDF   string
	// DeviceID is the PCI device id, "0x1eb8".
	DeviceID   string
	Driver     string
	IOMMUGroup string
	NUMANode   int
	Flavour    Flavour
	MdevTypes  []MdevType
	Mdevs      []Mdev
	VFs        []VF
	// SRIOVTypes is every SR-IOV type any VF offers or has, by ID.
	SRIOVTypes []VGPUType
	// Err is what could not be read about this GPU; nothing on a GPU with
	// an Err is changed by Reconcile.
	Err error
}

// Node is what discovery found.
type Node struct {
	GPUs []GPU
	// Errs are errors not attributable to one GPU.
	Errs []error
}

// GPU returns the GPU at bdf.
func (n *Node) GPU(bdf string) (*GPU, bool) {
	for i := range n.GPUs {
		if n.GPUs[i].BDF == bdf {
			return &n.GPUs[i], true
		}
	}
	return nil, false
}

// DeviceKind is the kind of an allocatable instance.
type DeviceKind string

const (
	// KindMdev is a vfio-mdev vGPU; its ID is the mdev's UUID.
	KindMdev DeviceKind = "mdev"
	// KindVF is an SR-IOV VF with a vGPU type; its ID is the VF's address.
	KindVF DeviceKind = "vf"
	// KindPassthrough is a whole GPU on vfio-pci; its ID is its address.
	KindPassthrough DeviceKind = "passthrough"
)

// Device is one allocatable instance: what a VM gets.
type Device struct {
	Kind DeviceKind
	// ID is the mdev UUID, or the VF's or GPU's PCI address.
	ID string
	// Parent is the physical GPU's PCI address.
	Parent     string
	IOMMUGroup string
	// TypeName and FramebufferMiB describe the vGPU type; empty and 0 for
	// passthrough (sysfs does not tell a GPU's memory).
	TypeName       string
	FramebufferMiB int64
}

// Devices lists the node's allocatable instances, by parent then ID.
func (n *Node) Devices() []Device {
	var out []Device
	for i := range n.GPUs {
		out = append(out, n.GPUs[i].Devices()...)
	}
	return out
}

// Devices lists the GPU's allocatable instances, by ID.
func (g *GPU) Devices() []Device {
	var out []Device
	if g.Driver == VFIODriver {
		out = append(out, Device{Kind: KindPassthrough, ID: g.BDF, Parent: g.BDF, IOMMUGroup: g.IOMMUGroup})
	}
	for _, m := range g.Mdevs {
		d := Device{Kind: KindMdev, ID: m.UUID, Parent: g.BDF, IOMMUGroup: m.IOMMUGroup}
		if t, ok := g.mdevType(m.Type); ok {
			d.TypeName, d.FramebufferMiB = t.Name, t.FramebufferMiB
		}
		out = append(out, d)
	}
	for _, vf := range g.VFs {
		if vf.CurrentType == 0 {
			continue
		}
		d := Device{Kind: KindVF, ID: vf.BDF, Parent: g.BDF, IOMMUGroup: vf.IOMMUGroup}
		if t, ok := g.sriovType(vf.CurrentType); ok {
			d.TypeName, d.FramebufferMiB = t.Name, t.FramebufferMiB
		}
		out = append(out, d)
	}
	return out
}

func (g *GPU) mdevType(id string) (MdevType, bool) {
	for _, t := range g.MdevTypes {
		if t.ID == id {
			return t, true
		}
	}
	return MdevType{}, false
}

func (g *GPU) sriovType(id int) (VGPUType, bool) {
	for _, t := range g.SRIOVTypes {
		if t.ID == id {
			return t, true
		}
	}
	return VGPUType{}, false
}
