// Command kubectl-gpuslice is the gpuslice kubectl plugin: put it on PATH
// and run `kubectl gpuslice inspect [NODE]` to see every GPU's shares and
// the pods holding them, or `kubectl gpuslice explain POD` to see why a
// pending pod is not placed. It reads the API server only (standard
// kubeconfig flags). It only wires package internal/kubectl.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gpuslice/gpuslice/internal/kubectl"
	"github.com/gpuslice/gpuslice/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := kubectl.NewCommand(kubectl.Options{
		Streams: genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
		Version: version.Version,
	})
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
