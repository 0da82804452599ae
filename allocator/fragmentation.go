package allocator

// Fragmenter is optionally implemented by a policy that measures a node's
// fragmentation its own way (the fragmentation-aware policies: the
// expected fragmentation F_n(M) of their learned workload).
type Fragmenter interface {
	// Fragmentation returns the node's fragmentation now, in GPUs (the sum
	// over its GPUs of the free share counted as fragmented).
	Fragmentation(n *Node) float64
}

// Fragmentation returns policy p's fragmentation measure of node n, in
// GPUs: the policy's own (Fragmenter) when it has one, else the free share
// of the node's partly used GPUs (memory that only a pod smaller than a
// whole GPU can use). Unhealthy GPUs and placeholders of vanished GPUs are
// not counted.
func Fragmentation(p Policy, n *Node) float64 {
	if f, ok := p.(Fragmenter); ok {
		return f.Fragmentation(n)
	}
	return PartlyFree(n)
}

// PartlyFree returns the free gpu-mem share of the node's healthy GPUs that
// are partly used, in GPUs.
func PartlyFree(n *Node) float64 {
	var out float64
	for i := range n.Devices {
		d := &n.Devices[i]
		if !d.Healthy || d.Placeholder || d.Capacity.Slices <= 0 {
			continue
		}
		free := n.Free(i).Slices
		if n.Used[i].Slices > 0 && free > 0 {
			out += float64(free) / float64(d.Capacity.Slices)
		}
	}
	return out
}

// Fragmentation implements Fragmenter: the node's expected fragmentation
// under the policy's current workload classes.
func (f *FGD) Fragmentation(n *Node) float64 {
	var buf [16]Units
	v := &NodeView{Node: n}
	free := freeOf(v, buf[:0])
	return f.frag(f.snap.Load(), n, free, v.CPUFree())
}
