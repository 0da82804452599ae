package vgpu

import "fmt"

// Op is a change Reconcile made.
type Op string

// Ops.
const (
	OpCreateMdev  Op = "create-mdev"
	OpRemoveMdev  Op = "remove-mdev"
	OpSetVFType   Op = "set-vf-type"
	OpClearVFType Op = "clear-vf-type"
	OpBindVFIO    Op = "bind-vfio-pci"
)

// Action is one change Reconcile made.
type Action struct {
	// GPU is the physical GPU's address; Device the mdev UUID or VF or GPU
	// address changed; Type the vGPU type's name, when there is one.
	GPU    string
	Op     Op
	Device string
	Type   string
}

// Problem is something Reconcile could not do, or a reason it left a GPU
// as it was. GPU is "" for a problem of the node or the config.
type Problem struct {
	GPU    string
	Reason string
}

func (p Problem) String() string {
	if p.GPU == "" {
		return p.Reason
	}
	return fmt.Sprintf("GPU %s: %s", p.GPU, p.Reason)
}

// Report is the outcome of one Reconcile: for node events and the
// inventory.
type Report struct {
	Actions  []Action
	Problems []Problem
	// Devices are the instances that match the config after the
	// reconcile: what the plugin may advertise.
	Devices []Device
	// Kept are instances the config no longer wants that pods still hold;
	// a later reconcile removes them once released. They are not to be
	// advertised for new pods.
	Kept []Device
	// Node is the state discovered after the changes.
	Node *Node
	// Wanted is the config entry each selected GPU was given, by address.
	Wanted map[string]GPUConfig
}

// Healthy reports whether the reconcile did all it was asked.
func (r *Report) Healthy() bool { return len(r.Problems) == 0 }
