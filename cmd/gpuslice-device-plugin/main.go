// Command gpuslice-device-plugin is the gpuslice kubelet device plugin: it
// advertises gpuslice.io/gpu-mem, gpu-core and gpu-count on a GPU node and
// hands each container the GPUs its placement names. With --check it only
// runs GPU discovery and a health probe against the real NVML and prints what
// it found (hack/gpu-check.sh). It only parses flags and wires package
// deviceplugin/app.
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

	"github.com/gpuslice/gpuslice/deviceplugin/app"
	"github.com/gpuslice/gpuslice/internal/version"
)

func main() {
	o := app.NewOptions()
	fs := pflag.NewFlagSet("gpuslice-device-plugin", pflag.ContinueOnError)
	o.AddFlags(fs)
	showVersion := fs.Bool("version", false, "Print the version and exit.")
	check := fs.Bool("check", false, "Discover the GPUs with the real NVML, print inventory JSON, topology and health, and exit.")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background().WithName("gpuslice-device-plugin"))
	if *check {
		if o.NodeName == "" {
			o.NodeName = "check"
		}
		if err := o.Validate(); err != nil {
			fmt.Fprintf(os.Stderr, "invalid options:\n%v\n", err)
			os.Exit(2)
		}
		if err := app.Check(ctx, o, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "gpu check failed: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "invalid options:\n%v\n", err)
		os.Exit(2)
	}
	if err := app.Run(ctx, o); err != nil {
		klog.FromContext(ctx).Error(err, "Device plugin failed")
		klog.Flush()
		os.Exit(1)
	}
}
