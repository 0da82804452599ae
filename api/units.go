package api

// Units is an amount of each per-GPU resource, each in its own unit: Slices
// counts gpu-mem slices of the cluster-wide slice size (not MiB, not a
// fraction of a GPU), Core counts gpu-core units (CoreUnitsPerGPU per whole
// GPU) and Slots counts sharing slots (one per container on the GPU).
type Units struct {
	Slices int64
	Core   int64
	Slots  int64
}

// Add returns u + v.
func (u Units) Add(v Units) Units {
	return Units{Slices: u.Slices + v.Slices, Core: u.Core + v.Core, Slots: u.Slots + v.Slots}
}

// Sub returns u - v.
func (u Units) Sub(v Units) Units {
	return Units{Slices: u.Slices - v.Slices, Core: u.Core - v.Core, Slots: u.Slots - v.Slots}
}

// Max returns the componentwise maximum of u and v.
func (u Units) Max(v Units) Units {
	return Units{Slices: max(u.Slices, v.Slices), Core: max(u.Core, v.Core), Slots: max(u.Slots, v.Slots)}
}

// Fits reports whether u fits in free, componentwise.
func (u Units) Fits(free Units) bool {
	return u.Slices <= free.Slices && u.Core <= free.Core && u.Slots <= free.Slots
}

// IsZero reports whether every component is zero.
func (u Units) IsZero() bool { return u == Units{} }

// AnyNegative reports whether any component is negative.
func (u Units) AnyNegative() bool { return u.Slices < 0 || u.Core < 0 || u.Slots < 0 }
