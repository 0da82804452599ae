package harness

import (
	"fmt"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
)

// ShippedDeployment is the install manifest the harness reads the
// extender's environment from (Options.ShippedEnv).
const ShippedDeployment = "manifests/deploy/gpuslice.yaml"

// extenderEnv is the environment the extender starts with: none, or with
// Options.ShippedEnv the shipped one.
func (c *Cluster) extenderEnv() ([]string, error) {
	if !c.opts.ShippedEnv {
		return nil, nil
	}
	return ShippedExtenderEnv(filepath.Join(c.repoRoot, ShippedDeployment))
}

// ShippedExtenderEnv returns the literal environment variables
// (NAME=value) of the container named "extender" in the manifest's one
// Deployment that has it. Variables set from a ConfigMap, a Secret or a
// field are left out.
func ShippedExtenderEnv(manifest string) ([]string, error) {
	objs, err := DecodeManifest(manifest)
	if err != nil {
		return nil, err
	}
	var env []string
	found := 0
	for _, o := range objs {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if ctr.Name != "extender" {
				continue
			}
			found++
			for _, e := range ctr.Env {
				if e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
		}
	}
	if found != 1 {
		return nil, fmt.Errorf("%s: %d extender containers, want 1", manifest, found)
	}
	return env, nil
}
