package kubectl

import (
	"fmt"
	"io"
	"strings"
)

// RenderExplanation prints an explanation as text.
func RenderExplanation(w io.Writer, e *Explanation) error {
	var b strings.Builder
	switch {
	case e.Invalid != "":
		fmt.Fprintf(&b, "Pod %s has an invalid gpuslice request, so no node can take it:\n  %s\n", e.Pod, e.Invalid)
	case e.Placement != nil:
		fmt.Fprintf(&b, "Pod %s is placed on node %s:\n", e.Pod, e.Placement.Node)
		for _, c := range e.Placement.Containers {
			name := c.Name
			if c.Init {
				name = "init:" + name
			}
			fmt.Fprintf(&b, "  %s: %s\n", name, devices(c.Devices))
		}
		if e.Stale != "" {
			fmt.Fprintf(&b, "Stale: %s\n", e.Stale)
		} else {
			b.WriteString("The device plugin's allocation record matches the placement.\n")
		}
	case e.Node != "":
		fmt.Fprintf(&b, "Pod %s is bound to node %s without a gpuslice placement.\n", e.Pod, e.Node)
	default:
		explainPending(&b, e)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("print explanation: %w", err)
	}
	return nil
}

func explainPending(b *strings.Builder, e *Explanation) {
	fmt.Fprintf(b, "Pod %s is not placed.\nRequest:\n", e.Pod)
	for _, r := range e.Request {
		fmt.Fprintf(b, "  %s\n", r)
	}
	if len(e.Models) > 0 {
		fmt.Fprintf(b, "Models allowed: %s\n", strings.Join(e.Models, ", "))
	}
	switch {
	case e.Sandbox != "":
		fmt.Fprintf(b, "Runtime class %s runs VM sandboxes: only GPUs of isolation mode %s, one whole instance per container and GPU\n", e.RuntimeClass, e.Sandbox)
	case e.RuntimeClass != "":
		fmt.Fprintf(b, "Runtime class %s maps to no VM-sandbox mode (--runtime-class-isolation): fitted as a pod that runs containers\n", e.RuntimeClass)
	}
	if e.Scheduler != "" {
		fmt.Fprintf(b, "kube-scheduler: %s\n", e.Scheduler)
	}
	nodes := len(e.Fits)
	for _, g := range e.Groups {
		nodes += len(g.Nodes)
	}
	fmt.Fprintf(b, "Fitted on %d node(s) with %d MiB slices and the %s policy, as the extender would:\n", nodes, e.SliceMiB, e.Policy)
	for _, g := range e.Groups {
		hint := ""
		if g.Resolvable {
			hint = " [preemption may help]"
		}
		fmt.Fprintf(b, "  %d node(s): %s%s\n    %s\n", len(g.Nodes), g.Reason, hint, strings.Join(g.Nodes, ", "))
	}
	if len(e.Fits) == 0 {
		b.WriteString("It fits on no node now.\n")
		return
	}
	parts := make([]string, len(e.Fits))
	for i, f := range e.Fits {
		parts[i] = fmt.Sprintf("%s (score %.4g)", f.Node, f.Score)
	}
	fmt.Fprintf(b, "It fits now on %d node(s), best first: %s\n", len(e.Fits), strings.Join(parts, ", "))
}
