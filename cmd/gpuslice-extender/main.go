// Command gpuslice-extender is the gpuslice scheduler extender: the HTTP
// service kube-scheduler calls to filter, score and bind pods that request
// gpuslice GPU shares. It only parses flags and wires package scheduler.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/internal/version"
	"github.com/gpuslice/gpuslice/scheduler"
)

func main() {
	o := scheduler.NewOptions()
	fs := pflag.NewFlagSet("gpuslice-extender", pflag.ContinueOnError)
	o.AddFlags(fs)
	showVersion := fs.Bool("version", false, "Print the version and exit.")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.MarkPolicyFlag(fs.Changed("policy"))
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "invalid options:\n%v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background().WithName("gpuslice-extender"))
	if err := scheduler.Run(ctx, o, version.Version); err != nil {
		klog.FromContext(ctx).Error(err, "Extender failed")
		klog.Flush()
		os.Exit(1)
	}
}
