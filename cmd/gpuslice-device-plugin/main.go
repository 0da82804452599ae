// Command gpuslice-device-plugin is the gpuslice kubelet device plugin: it
// advertises gpuslice.io/gpu-mem, gpu-core and gpu-count on a GPU node and
// hands each container the GPUs its placement names. With --check it only
// runs GPU discovery and a health probe against the real NVML and prints what
// it found (hack/gpu-check.sh). --config names a DevicePluginConfig file
// (docs/device-plugin.md) whose fields flags set on the command line
// override. It only parses flags and wires package deviceplugin/app.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/gpuslice/gpuslice/deviceplugin/app"
	"github.com/gpuslice/gpuslice/internal/cli"
)

func main() {
	o := app.NewOptions()
	var check bool
	cli.Main(cli.Command{
		Name: "gpuslice-device-plugin",
		Logs: o.Logs,
		AddFlags: func(fs *pflag.FlagSet) {
			o.AddFlags(fs)
			fs.BoolVar(&check, "check", false, "Discover the GPUs with the real NVML, print inventory JSON, topology and health, and exit.")
		},
		Run: func(ctx context.Context, fs *pflag.FlagSet) error {
			if err := o.Complete(fs); err != nil {
				return cli.Usage(err)
			}
			if check && o.NodeName == "" {
				o.NodeName = "check"
			}
			if err := o.Validate(); err != nil {
				return cli.Usage(err)
			}
			if check {
				if err := app.Check(ctx, o, os.Stdout); err != nil {
					return fmt.Errorf("gpu check failed: %w", err)
				}
				return nil
			}
			return app.Run(ctx, o)
		},
	})
}
