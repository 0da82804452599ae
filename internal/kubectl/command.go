package kubectl

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// Options wires the plugin to the world: its streams, the API server and
// the clock. Tests replace all three.
type Options struct {
	Streams genericiooptions.IOStreams
	// Client returns the clientset and the namespace to use. Nil builds
	// them from the standard kubeconfig flags (genericclioptions).
	Client func() (kubernetes.Interface, string, error)
	// Clock measures ages; nil is the real clock.
	Clock clock.PassiveClock
	// IsTerminal reports whether w is a terminal (colour on --color=auto);
	// nil checks for a character device.
	IsTerminal func(w io.Writer) bool
	// Version is printed by --version.
	Version string
}

// NewCommand returns the kubectl-gpuslice command with its inspect,
// explain and defrag subcommands.
func NewCommand(o Options) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	if o.Client == nil {
		o.Client = func() (kubernetes.Interface, string, error) { return clientFromFlags(flags) }
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	root := &cobra.Command{
		Use:           "kubectl-gpuslice",
		Short:         "See what gpuslice GPUs are doing, and why a pod is not placed",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl gpuslice"},
		Version:       o.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(o.Streams.In)
	root.SetOut(o.Streams.Out)
	root.SetErr(o.Streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newInspectCommand(&o), newExplainCommand(&o), newDefragCommand(&o))
	return root
}

func newInspectCommand(o *Options) *cobra.Command {
	var details bool
	var output, color string
	cmd := &cobra.Command{
		Use:   "inspect [NODE]",
		Short: "Show every GPU's slices, core and slots, the pods holding them, and stale placements",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, OutputWide); err != nil {
				return err
			}
			colour, err := o.colour(color)
			if err != nil {
				return err
			}
			in, err := o.load(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				in.Node = args[0]
			}
			r := BuildReport(in)
			if in.Node != "" && len(r.Nodes) == 0 {
				return fmt.Errorf("node %q has no gpuslice inventory", in.Node)
			}
			switch output {
			case OutputJSON, OutputYAML:
				return renderData(o.Streams.Out, output, r)
			}
			return RenderTable(o.Streams.Out, r, TableOptions{Wide: output == OutputWide, Details: details, Color: colour})
		},
	}
	cmd.Flags().BoolVarP(&details, "details", "d", false, "List every container's share of each GPU.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide, json or yaml (default: a table).")
	cmd.Flags().StringVar(&color, "color", "auto", "Colour the usage bars: auto (on a terminal), always or never.")
	return cmd
}

func newExplainCommand(o *Options) *cobra.Command {
	var output, policy, runtimeClasses string
	var sliceMiB int64
	cmd := &cobra.Command{
		Use:   "explain POD",
		Short: "Say why a pending gpuslice pod is not placed, with the reasons per group of nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pol, err := allocator.NewPolicy(policy)
			if err != nil {
				return fmt.Errorf("--policy: %w", err)
			}
			modes, err := api.ParseRuntimeClassModes(runtimeClasses)
			if err != nil {
				return fmt.Errorf("--runtime-class-isolation: %w", err)
			}
			client, ns, err := o.Client()
			if err != nil {
				return err
			}
			pod, err := client.CoreV1().Pods(ns).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get pod: %w", err)
			}
			in, err := o.load(cmd.Context())
			if err != nil {
				return err
			}
			e, err := Explain(cmd.Context(), pod, in, ExplainOptions{SliceMiB: sliceMiB, Policy: pol, RuntimeClassModes: modes})
			if err != nil {
				return err
			}
			if output != "" {
				return renderData(o.Streams.Out, output, e)
			}
			return RenderExplanation(o.Streams.Out, e)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: json or yaml (default: text).")
	cmd.Flags().StringVar(&policy, "policy", allocator.PolicyBinpack, fmt.Sprintf("Scoring policy the extender uses for this pod's scheduler, one of %v.", allocator.PolicyNames()))
	cmd.Flags().StringVar(&runtimeClasses, "runtime-class-isolation", "", "RuntimeClasses whose pods run in VM sandboxes, as name=mode[,name=mode...] (vgpu, passthrough): the extender's --runtime-class-isolation.")
	cmd.Flags().Int64Var(&sliceMiB, "slice-mib", 0, "Cluster-wide slice size in MiB, the extender's --slice-mib (default: the one most node inventories use).")
	return cmd
}

// checkOutput accepts "", json, yaml and the extra formats given.
func checkOutput(output string, extra ...string) error {
	switch output {
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	for _, e := range extra {
		if output == e {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q", output)
}

func (o *Options) colour(mode string) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return o.IsTerminal(o.Streams.Out), nil
	}
	return false, fmt.Errorf("--color must be auto, always or never, not %q", mode)
}

// load lists every node and pod.
func (o *Options) load(ctx context.Context) (Input, error) {
	client, _, err := o.Client()
	if err != nil {
		return Input{}, err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Input{}, fmt.Errorf("list nodes: %w", err)
	}
	pods, err := client.CoreV1().Pods(corev1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Input{}, fmt.Errorf("list pods: %w", err)
	}
	return Input{Nodes: nodes.Items, Pods: pods.Items, Now: o.Clock.Now()}, nil
}

func clientFromFlags(flags *genericclioptions.ConfigFlags) (kubernetes.Interface, string, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("namespace: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	return client, ns, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
