package harness

import (
	"fmt"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// ShippedDeployment is the install manifest the harness reads the
// extender's environment and policy from (Options.ShippedEnv,
// ShippedExtenderPolicy).
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
	ctr, err := shippedExtender(manifest)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env, nil
}

// ShippedExtenderPolicy returns the value of the --policy argument of the
// manifest's extender container, the default placement policy an install
// runs with. A container without one is an error: the harness would
// otherwise measure a policy nobody ships.
func ShippedExtenderPolicy(manifest string) (string, error) {
	ctr, err := shippedExtender(manifest)
	if err != nil {
		return "", err
	}
	for _, a := range ctr.Args {
		if v, ok := strings.CutPrefix(a, "--policy="); ok && v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: the extender container has no --policy=NAME argument", manifest)
}

// shippedExtender returns the container named "extender" of the
// manifest's one Deployment that has it.
func shippedExtender(manifest string) (*corev1.Container, error) {
	objs, err := DecodeManifest(manifest)
	if err != nil {
		return nil, err
	}
	var found []*corev1.Container
	for _, o := range objs {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for i := range d.Spec.Template.Spec.Containers {
			if d.Spec.Template.Spec.Containers[i].Name == "extender" {
				found = append(found, &d.Spec.Template.Spec.Containers[i])
			}
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s: %d extender containers, want 1", manifest, len(found))
	}
	return found[0], nil
}

// ExtenderPolicy is the --policy the cluster's extenders run with.
func (c *Cluster) ExtenderPolicy() string { return c.opts.Policy }
