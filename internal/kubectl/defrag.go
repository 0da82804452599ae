package kubectl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// DefragReport is what defrag prints: the advisor's dry-run plan
// (allocator.Defrag) and what it assumed. Its JSON form is defrag's -o json
// output.
type DefragReport struct {
	// DryRun is always true: no eviction is implemented.
	DryRun bool `json:"dryRun"`
	// SliceMiB is the slice size the nodes were read with; nodes whose
	// inventory uses another one are left out.
	SliceMiB int64 `json:"sliceMiB"`
	// Nodes and Pods count the nodes and placed pods the plan saw.
	Nodes int `json:"nodes"`
	Pods  int `json:"pods"`
	// Skipped says, per pod, why it is not part of the plan.
	Skipped []SkippedPod          `json:"skipped,omitempty"`
	Plan    *allocator.DefragPlan `json:"plan"`
}

// SkippedPod is a placed pod the plan does not count (the extender does
// not charge it either) or may not move.
type SkippedPod struct {
	Pod    string `json:"pod"`
	Reason string `json:"reason"`
}

// DefragOptions are the assumptions of a plan.
type DefragOptions struct {
	// SliceMiB is the cluster-wide slice size; 0 takes the one most node
	// inventories use.
	SliceMiB int64
	// Policy fits the moves and measures fragmentation; nil is binpack.
	Policy allocator.Policy
	// MaxMoves bounds the pods moved; 0 is no bound.
	MaxMoves int
}

// errNoEviction is defrag's answer without --dry-run.
var errNoEviction = errors.New("defrag only advises: gpuslice implements no eviction, so it moves no pod; run it with --dry-run to see which moves would free whole GPUs")

func newDefragCommand(o *Options) *cobra.Command {
	var output, policy string
	var dryRun bool
	var d DefragOptions
	cmd := &cobra.Command{
		Use:   "defrag --dry-run",
		Short: "List the pods whose moves would free the most whole GPUs (a dry run: nothing is evicted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				return errNoEviction
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			pol, err := allocator.NewPolicy(policy)
			if err != nil {
				return fmt.Errorf("--policy: %w", err)
			}
			d.Policy = pol
			in, err := o.load(cmd.Context())
			if err != nil {
				return err
			}
			r, err := Defrag(cmd.Context(), in, d)
			if err != nil {
				return err
			}
			if output != "" {
				return renderData(o.Streams.Out, output, r)
			}
			return RenderDefrag(o.Streams.Out, r)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "Print the plan only (required: no eviction is implemented).")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: json or yaml (default: a table).")
	cmd.Flags().StringVar(&policy, "policy", allocator.PolicyBinpack, fmt.Sprintf("Policy that fits the moves and measures fragmentation, one of %v.", allocator.PolicyNames()))
	cmd.Flags().IntVar(&d.MaxMoves, "max-moves", 0, "Move at most this many pods (0: no bound).")
	cmd.Flags().Int64Var(&d.SliceMiB, "slice-mib", 0, "Cluster-wide slice size in MiB, the extender's --slice-mib (default: the one most node inventories use).")
	return cmd
}

// Defrag builds the cluster as the extender charges it (every node's
// inventory, every bound pod's placement when it agrees with the pod's
// request) and returns the advisor's dry-run plan on it. kube-scheduler's
// own filters (a cordon, taints, node selectors: schedulerFilter) keep a
// pod off a destination. A pod on vgpu or passthrough GPUs keeps to GPUs
// of that mode.
func Defrag(ctx context.Context, in Input, o DefragOptions) (*DefragReport, error) {
	logger := klog.FromContext(ctx)
	r := &DefragReport{DryRun: true, SliceMiB: cmp.Or(o.SliceMiB, commonSliceMiB(in.Nodes))}
	invs := inventories(in.Nodes)
	kube := map[string]*corev1.Node{}
	var nodes []*allocator.Node
	byName := map[string]*allocator.Node{}
	left := map[string]string{}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		inv := invs[n.Name]
		switch {
		case inv == nil:
			left[n.Name] = "has no usable gpuslice inventory"
			continue
		case inv.SliceMiB != r.SliceMiB:
			left[n.Name] = fmt.Sprintf("uses %d MiB slices, the plan %d MiB (--slice-mib)", inv.SliceMiB, r.SliceMiB)
			continue
		}
		an := allocator.NodeFromInventory(n.Name, inv)
		nodes = append(nodes, an)
		byName[n.Name], kube[n.Name] = an, n
	}
	slices.SortFunc(nodes, func(a, b *allocator.Node) int { return cmp.Compare(a.Name, b.Name) })
	ps := slices.Clone(in.Pods)
	slices.SortFunc(ps, func(a, b corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	pods := map[string]*corev1.Pod{}
	var placed []allocator.DefragPod
	for i := range ps {
		p := &ps[i]
		key := p.Namespace + "/" + p.Name
		dp, reason := defragPod(p, byName, left)
		switch {
		case reason != "":
			r.Skipped = append(r.Skipped, SkippedPod{Pod: key, Reason: reason})
			continue
		case dp == nil:
			continue
		}
		pods[key] = p
		placed = append(placed, *dp)
	}
	r.Nodes, r.Pods = len(nodes), len(placed)
	plan, err := allocator.Defrag(nodes, placed, allocator.DefragOptions{Policy: o.Policy, MaxMoves: o.MaxMoves,
		Allowed: func(p *allocator.DefragPod, n *allocator.Node) bool {
			return schedulerFilter(logger, pods[p.Name], kube[n.Name]) == ""
		}})
	if err != nil {
		return nil, fmt.Errorf("defrag: %w", err)
	}
	for _, m := range plan.Moves {
		logger.V(2).Info("Defrag would move a pod", "step", m.Step, "pod", m.Pod, "from", m.FromNode, "fromGPUs", m.FromGPUs, "to", m.ToNode, "toGPUs", m.ToGPUs)
	}
	r.Plan = plan
	return r, nil
}

// defragPod returns the pod as the advisor sees it, nil when it holds no
// share the extender charges (not bound, no placement, finished), or the
// reason a placed pod is left out.
func defragPod(p *corev1.Pod, nodes map[string]*allocator.Node, left map[string]string) (*allocator.DefragPod, string) {
	raw, ok := p.Annotations[api.AnnotationPlacement]
	if !ok || p.Spec.NodeName == "" || api.IsTerminal(p) {
		return nil, ""
	}
	pl, err := api.ParsePlacement(raw)
	if err != nil {
		return nil, fmt.Sprintf("placement unreadable: %v", err)
	}
	req, err := api.ParsePodRequest(p)
	if err != nil {
		return nil, fmt.Sprintf("request unreadable: %v", err)
	}
	if err := pl.ConsistentWith(req, p.Spec.NodeName); err != nil {
		return nil, fmt.Sprintf("%v (the extender does not charge it)", err)
	}
	n := nodes[p.Spec.NodeName]
	if n == nil {
		return nil, fmt.Sprintf("node %s %s", p.Spec.NodeName, cmp.Or(left[p.Spec.NodeName], "is not listed"))
	}
	// A share on a GPU the inventory no longer lists stays charged there.
	n.AddPlaceholders(pl, func(string) allocator.Units { return allocator.Units{} })
	a, err := allocator.AssignmentFromPlacement(n, pl, req)
	if err != nil {
		return nil, err.Error()
	}
	n.Apply(a.Charges, 1)
	for _, c := range a.Charges {
		if m := n.Devices[c.Device].Isolation; m.Sandbox() {
			req.Sandbox = m
		}
	}
	dp := &allocator.DefragPod{Name: p.Namespace + "/" + p.Name, Node: n.Name, Request: req, Charges: a.Charges}
	if p.DeletionTimestamp != nil {
		dp.Pinned = true
	}
	return dp, ""
}

// RenderDefrag prints a plan as a table of moves and a summary line.
func RenderDefrag(w io.Writer, r *DefragReport) error {
	var b strings.Builder
	p := r.Plan
	if len(p.Moves) == 0 {
		b.WriteString("No move frees a whole GPU.\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tPOD\tFROM\tTO\tSLICES")
		for _, m := range p.Moves {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", m.Step, m.Pod, gpuList(m.FromNode, m.FromGPUs), gpuList(m.ToNode, m.ToGPUs), m.Slices)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("print defrag plan: %w", err)
		}
		freed := make([]string, len(p.Freed))
		for i, g := range p.Freed {
			freed[i] = gpuList(g.Node, []int{g.GPU})
		}
		fmt.Fprintf(&b, "\nFreed: %s\n", strings.Join(freed, ", "))
	}
	if len(r.Skipped) > 0 {
		b.WriteString("\nNot counted:\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, "  %s: %s\n", s.Pod, s.Reason)
		}
	}
	fmt.Fprintf(&b, "\nDry run, nothing was moved: would free %s by moving %s (%d slices); whole GPUs free %d -> %d; fragmentation %.2f -> %.2f GPUs (%s policy, %d nodes, %d placed pods).\n",
		plural(p.FreedGPUs, "whole GPU"), plural(p.MovedPods, "pod"), p.MovedSlices,
		p.FreeWholeGPUsBefore, p.FreeWholeGPUsAfter, p.FragmentationBefore, p.FragmentationAfter, p.Policy, r.Nodes, r.Pods)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("print defrag plan: %w", err)
	}
	return nil
}

// gpuList names GPUs of one node: "gpu-a GPU 0" or "gpu-a GPUs 0,1".
func gpuList(node string, gpus []int) string {
	s := make([]string, len(gpus))
	for i, g := range gpus {
		s[i] = fmt.Sprint(g)
	}
	noun := "GPUs"
	if len(gpus) == 1 {
		noun = "GPU"
	}
	return fmt.Sprintf("%s %s %s", node, noun, strings.Join(s, ","))
}
