package kubectl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// TableOptions says how the inspect table is printed.
type TableOptions struct {
	// Wide adds the GPU's UUID, memory, NUMA node, free amounts, what its
	// isolation enforces, and the pods holding it.
	Wide bool
	// Details adds a table of every container's share after the GPUs.
	Details bool
	// Color colours the usage bars and problems (a terminal only).
	Color bool
}

// ANSI colours. Every code has the same length, so a column whose cells
// all carry one code and the reset stays aligned.
const (
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiBold   = "\x1b[01m"
	ansiReset  = "\x1b[0m"
	barWidth   = 10
)

// RenderTable prints the report as tables followed by the summary line.
func RenderTable(w io.Writer, r *Report, o TableOptions) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := []string{"NODE", "GPU", "MODEL", "ISOLATION", "SLICES", "CORE", "SLOTS", "PODS", o.paint(ansiBold, "USAGE")}
	if o.Wide {
		header = append(header, "UUID", "MEMORY", "NUMA", "FREE(S/C/SL)", "ENFORCEMENT", "HOLDERS")
	}
	fmt.Fprintln(tw, strings.Join(append(header, "STATUS"), "\t"))
	for _, n := range r.Nodes {
		if n.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t%s\t", n.Name, o.paint(ansiRed, "-"))
			if o.Wide {
				fmt.Fprint(tw, "-\t-\t-\t-\t-\t-\t")
			}
			fmt.Fprintf(tw, "inventory error: %s\n", n.Error)
			continue
		}
		for i, g := range n.GPUs {
			name := ""
			if i == 0 {
				name = n.Name
			}
			cells := []string{name, fmt.Sprint(g.Index), g.Model, isolationCell(g), ratio(g.Slices), ratio(g.Core), ratio(g.Slots),
				fmt.Sprint(pods(g.Holders)), o.bar(g)}
			if o.Wide {
				cells = append(cells, g.UUID, fmt.Sprintf("%dMiB", g.MemoryMiB), numa(g.NUMANode),
					fmt.Sprintf("%d/%d/%d", g.Slices.Free, g.Core.Free, g.Slots.Free), g.Enforcement, holders(g.Holders))
			}
			fmt.Fprintln(tw, strings.Join(append(cells, o.status(g, n.Cordoned)), "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print GPUs: %w", err)
	}
	if o.Details {
		if err := renderHolders(w, r); err != nil {
			return err
		}
	}
	if err := renderStale(w, r.Stale); err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%s %s\n", o.paint(ansiRed, "PROBLEM:"), p)
	}
	if _, err := fmt.Fprintln(w, SummaryLine(r)); err != nil {
		return fmt.Errorf("print summary: %w", err)
	}
	return nil
}

func renderHolders(w io.Writer, r *Report) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGPU\tPOD\tCONTAINER\tSLICES\tCORE\tSLOTS")
	rows := 0
	for _, n := range r.Nodes {
		for _, g := range n.GPUs {
			for _, h := range g.Holders {
				c := h.Container
				if h.Init {
					c = "init:" + c
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", n.Name, g.Index, h.Pod, c, h.Slices, h.Core, h.Slots)
				rows++
			}
		}
	}
	if rows == 0 {
		fmt.Fprintln(tw, "-\t-\t-\t-\t-\t-\t-")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print holders: %w", err)
	}
	return nil
}

func renderStale(w io.Writer, stale []StalePod) error {
	if len(stale) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STALE POD\tNODE\tAGE\tREASON")
	for _, s := range stale {
		a := s.Age
		if a == "" {
			a = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Pod, s.Node, a, s.Reason)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print stale pods: %w", err)
	}
	return nil
}

// SummaryLine is the one-line summary of the report.
func SummaryLine(r *Report) string {
	s := r.Summary
	var b strings.Builder
	scope := "Cluster"
	if len(r.Nodes) == 1 {
		scope = "Node " + r.Nodes[0].Name
	}
	fmt.Fprintf(&b, "%s: %s on %s", scope, plural(s.GPUs, "GPU"), plural(s.Nodes, "node"))
	if s.Unhealthy > 0 {
		fmt.Fprintf(&b, " (%d unhealthy)", s.Unhealthy)
	}
	fmt.Fprintf(&b, ", %.1f%% allocated (%d/%d slices, %d/%d core)", s.AllocatedPercent, s.Slices.Used, s.Slices.Total, s.Core.Used, s.Core.Total)
	f := s.Fragmentation
	fmt.Fprintf(&b, "; fragmentation: %d wholly free, %d partly free, %d full GPUs, %d of %d free slices (%.1f%%) on partly free GPUs",
		f.WhollyFree, f.PartlyFree, f.Full, f.StrandedSlices, max(s.Slices.Free, 0), f.StrandedPercent)
	if n := len(s.Pending); n > 0 {
		fmt.Fprintf(&b, "; %s pending (kubectl gpuslice explain POD)", plural(n, "gpuslice pod"))
	}
	return b.String()
}

// plural returns "1 GPU", "2 GPUs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func ratio(a Amount) string { return fmt.Sprintf("%d/%d", a.Used, a.Total) }

func numa(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// pods counts the distinct pods among a GPU's holders.
func pods(hs []Holder) int {
	seen := map[string]bool{}
	for _, h := range hs {
		seen[h.Pod] = true
	}
	return len(seen)
}

// holders lists the pods holding a GPU, each with the slices it holds.
func holders(hs []Holder) string {
	if len(hs) == 0 {
		return "-"
	}
	var parts []string
	for _, h := range hs {
		c := h.Container
		if h.Init {
			c = "init:" + c
		}
		parts = append(parts, fmt.Sprintf("%s/%s=%ds/%dc", h.Pod, c, h.Slices, h.Core))
	}
	return strings.Join(parts, ",")
}

func (o TableOptions) status(g GPUReport, cordoned bool) string {
	switch {
	case g.Overcommitted:
		return o.paint(ansiRed, "OVER-COMMITTED")
	case !g.Healthy && g.Reason != "":
		return o.paint(ansiRed, "unhealthy: "+g.Reason)
	case !g.Healthy:
		return o.paint(ansiRed, "unhealthy")
	case cordoned:
		return "ok, node cordoned"
	}
	return "ok"
}

// bar draws the share of slices in use as a fixed-width bar and percent.
func (o TableOptions) bar(g GPUReport) string {
	used, total := g.Slices.Used, g.Slices.Total
	filled := 0
	if total > 0 {
		filled = int(min(max((used*barWidth+total/2)/total, 0), barWidth))
		if used > 0 && filled == 0 {
			filled = 1
		}
	}
	pct := int64(0)
	if total > 0 {
		pct = used * 100 / total
	}
	s := fmt.Sprintf("%s%s %3d%%", strings.Repeat("█", filled), strings.Repeat("░", barWidth-filled), pct)
	code := ansiGreen
	switch {
	case !g.Healthy || g.Overcommitted || pct >= 90:
		code = ansiRed
	case pct >= 60:
		code = ansiYellow
	}
	return o.paint(code, s)
}

// paint wraps s in an ANSI colour when colour is on.
func (o TableOptions) paint(code, s string) string {
	if !o.Color {
		return s
	}
	return code + s + ansiReset
}
