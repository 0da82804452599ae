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
	steps := []func(context.Context, string) ([]chartrender.File, error){
		func(_ context.Context, root string) ([]chartrender.File, error) {
			return chartrender.AdmissionCopies(root)
		},
		chartrender.Rendered,
	}
	act := chartrender.Write
	if check {
		act = chartrender.Stale
	}
	var paths []string
	for _, step := range steps {
		files, err := step(ctx, root)
		if err != nil {
			return err
		}
		p, err := act(root, files)
		if err != nil {
			return err
		}
		paths = append(paths, p...)
	}
	if check {
		return chartrender.StaleError(paths)
	}
	for _, p := range paths {
		fmt.Println("updated", p)
	}
	return nil
}
