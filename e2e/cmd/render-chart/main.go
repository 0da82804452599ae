// Command render-chart regenerates what is derived from the gpuslice Helm
// chart (package chartrender): the chart's copy of the admission policy,
// the plain YAML under manifests/deploy/ and the kubeadm scheduler stanza.
// `make manifests` runs it; with -check it changes nothing and exits 1 when
// a file is stale (the e2e test TestGeneratedManifestsAreCurrent does the
// same).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gpuslice/gpuslice/e2e/chartrender"
)

func main() {
	root := flag.String("repo", "..", "The gpuslice checkout.")
	check := flag.Bool("check", false, "Only report whether the generated files are current.")
	flag.Parse()
	if err := run(context.Background(), *root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "render-chart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root string, check bool) error {
	// The admission copies first: the chart renders from them.
	copies, err := chartrender.AdmissionCopies(root)
	if err != nil {
		return err
	}
	if check {
		stale, err := chartrender.Stale(root, copies)
		if err != nil {
			return err
		}
		rendered, err := chartrender.Rendered(ctx, root)
		if err != nil {
			return err
		}
		more, err := chartrender.Stale(root, rendered)
		if err != nil {
			return err
		}
		return chartrender.StaleError(append(stale, more...))
	}
	changed, err := chartrender.Write(root, copies)
	if err != nil {
		return err
	}
	rendered, err := chartrender.Rendered(ctx, root)
	if err != nil {
		return err
	}
	more, err := chartrender.Write(root, rendered)
	if err != nil {
		return err
	}
	for _, p := range append(changed, more...) {
		fmt.Println("updated", p)
	}
	return nil
}
