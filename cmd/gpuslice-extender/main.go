// Command gpuslice-extender is the gpuslice scheduler extender: the HTTP
// service kube-scheduler calls to filter, score and bind pods that request
// gpuslice GPU shares. It only parses flags into scheduler/app.Options and
// runs them.
package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/gpuslice/gpuslice/internal/cli"
	"github.com/gpuslice/gpuslice/internal/version"
	"github.com/gpuslice/gpuslice/scheduler/app"
)

func main() {
	o := app.NewOptions()
	cli.Main(cli.Command{
		Name:     "gpuslice-extender",
		Logs:     o.Logs,
		AddFlags: o.AddFlags,
		Run: func(ctx context.Context, fs *pflag.FlagSet) error {
			o.Complete(fs)
			if err := o.Validate(); err != nil {
				return cli.Usage(err)
			}
			return app.Run(ctx, o, version.Version)
		},
	})
}
