// Package chartrender renders the gpuslice Helm chart with Helm's Go SDK
// (helm.sh/helm/v4) exactly as `helm template` does, client-side only. The
// checked-in plain YAML under manifests/deploy/ is this package's output for
// the default values (cmd/render-chart writes it; a test fails when it is
// stale), and the chart e2e test applies its objects to the real control
// plane.
package chartrender

import (
	"context"
	"fmt"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// Defaults of a rendering: the release name and namespace the checked-in
// manifests are rendered with, and the docs install with.
const (
	ReleaseName = "gpuslice"
	Namespace   = "gpuslice-system"
)

// Options of one rendering.
type Options struct {
	// ChartDir is the chart's directory (manifests/charts/gpuslice).
	ChartDir string
	// ReleaseName and Namespace default to the package constants.
	ReleaseName, Namespace string
	// Values override the chart's values.yaml (as `helm template -f`).
	Values map[string]any
}

// Render returns the chart's manifest as `helm template NAME CHART
// --namespace NS` prints it: every rendered document, in Helm's install
// order, each headed by its "# Source:" comment, ending in one newline.
func Render(ctx context.Context, o Options) (string, error) {
	if o.ReleaseName == "" {
		o.ReleaseName = ReleaseName
	}
	if o.Namespace == "" {
		o.Namespace = Namespace
	}
	ch, err := chartloader.Load(o.ChartDir)
	if err != nil {
		return "", fmt.Errorf("load chart %s: %w", o.ChartDir, err)
	}
	install := action.NewInstall(action.NewConfiguration())
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return "", fmt.Errorf("kube version: %w", err)
	}
	install.KubeVersion = kv
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = o.ReleaseName
	install.Namespace = o.Namespace
	install.Replace = true // no release-name check, as `helm template`
	vals := o.Values
	if vals == nil {
		vals = map[string]any{}
	}
	r, err := install.RunWithContext(ctx, ch, vals)
	if err != nil {
		return "", fmt.Errorf("render chart %s: %w", o.ChartDir, err)
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return "", fmt.Errorf("render chart %s: unexpected release type %T", o.ChartDir, r)
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest))
	b.WriteString("\n")
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return b.String(), nil
}
