package allocator

// NodeView is a node's free capacity as seen while a pod is being placed:
// the node's usage plus what the pod's earlier containers took. Policies read
// free capacity only through it.
type NodeView struct {
	Node *Node
	// extra holds units taken by the pod being placed, by device position;
	// nil when none.
	extra []Units
	// empty makes the view ignore the node's usage (capacity less what the
	// pod itself took), for classifying failures as resolvable by
	// preemption or not.
	empty bool
	// podCPU is the host CPU of the pod being placed (0 when unknown).
	podCPU int64
}

// View returns the view of the node's current free capacity.
func (n *Node) View() NodeView { return NodeView{Node: n} }

// Free returns the free units of device position i in the view.
func (v *NodeView) Free(i int) Units {
	f := v.Node.Free(i)
	if v.empty {
		f = v.Node.Devices[i].Capacity
	}
	if v.extra != nil {
		f = f.Sub(v.extra[i])
	}
	return f
}

// CPUFree returns the node's free host CPU in milli-cores before the pod
// being placed, or -1 when the node does not track CPU.
func (v *NodeView) CPUFree() int64 {
	if v.Node.CPUCapacity <= 0 {
		return -1
	}
	if v.empty {
		return v.Node.CPUCapacity
	}
	return v.Node.CPUCapacity - v.Node.CPUUsed
}

// PodCPU returns the host CPU request of the pod being placed.
func (v *NodeView) PodCPU() int64 { return v.podCPU }

// Len returns the number of devices.
func (v *NodeView) Len() int { return len(v.Node.Devices) }

// Capacity returns the capacity of device position i.
func (v *NodeView) Capacity(i int) Units { return v.Node.Devices[i].Capacity }

// take records that the pod being placed takes a container's per-GPU
// share on device position i: the share's charge there (Device.Charge).
func (v *NodeView) take(i int, share Units) {
	if v.extra == nil {
		v.extra = make([]Units, len(v.Node.Devices))
	}
	v.extra[i] = v.extra[i].Add(v.Node.Devices[i].Charge(share))
}
