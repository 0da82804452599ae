package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Render writes the view as a table: one row per GPU with its index, model,
// slices / core / slots used out of total, and the containers holding shares
// ("namespace/pod/container=SLICESs/COREc", init containers prefixed with
// "init:"). Over-committed GPUs are marked with "!", unhealthy ones with
// "(unhealthy)". Problems follow the table.
func Render(w io.Writer, v *View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGPU\tMODEL\tSLICES\tCORE\tSLOTS\tHOLDERS")
	for _, n := range v.Nodes {
		if n.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tinventory error: %v\n", n.Name, n.Err)
			continue
		}
		for i, g := range n.GPUs {
			name := ""
			if i == 0 {
				name = n.Name
			}
			model := g.Model
			if !g.Healthy {
				model += " (unhealthy)"
			}
			mark := ""
			if g.Overcommitted() {
				mark = "!"
			}
			fmt.Fprintf(tw, "%s\t%s%d\t%s\t%d/%d\t%d/%d\t%d/%d\t%s\n", name, mark, g.Index, model,
				g.Slices.Used, g.Slices.Total, g.Core.Used, g.Core.Total, g.Slots.Used, g.Slots.Total, holders(g.Holders))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("render table: %w", err)
	}
	for _, n := range v.Nodes {
		if n.SliceMiB > 0 {
			fmt.Fprintf(w, "slice size: %d MiB (node %s)\n", n.SliceMiB, n.Name)
			break
		}
	}
	for _, p := range v.Overcommitted() {
		if _, err := fmt.Fprintf(w, "OVER-COMMITTED: %s\n", p); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	for _, p := range v.Problems {
		if _, err := fmt.Fprintf(w, "PROBLEM: %s\n", p); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	return nil
}

func holders(hs []Holder) string {
	if len(hs) == 0 {
		return "-"
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		init := ""
		if h.Init {
			init = "init:"
		}
		parts[i] = fmt.Sprintf("%s/%s%s=%ds/%dc", h.Pod, init, h.Container, h.Slices, h.Core)
	}
	return strings.Join(parts, " ")
}
