package chartrender

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"

	"github.com/gpuslice/gpuslice/api"
)

// TestAdmissionBoundsMatchAPI checks that the bounds the request-shape
// admission policy (manifests/admission/pod-security.yaml) writes in CEL
// are the api package's constants: each bound is defined once in Go and
// copied once into the policy, and this test keeps the copy honest. (The
// rules themselves are compared with api.ParsePodRequest on the real API
// server by e2e's TestPodSecurity/RequestShape.)
func TestAdmissionBoundsMatchAPI(t *testing.T) {
	path := filepath.Join(repoRoot, AdmissionDir, "pod-security.yaml")
	var policy *admissionv1.ValidatingAdmissionPolicy
	for _, o := range decodeFile(t, path) {
		if p, ok := o.Typed.(*admissionv1.ValidatingAdmissionPolicy); ok && p.Name == "gpuslice-request-shape" {
			policy = p
		}
	}
	if policy == nil {
		t.Fatalf("%s: no ValidatingAdmissionPolicy gpuslice-request-shape", path)
	}
	got := map[string]int64{}
	for _, v := range policy.Spec.Variables {
		if n, err := strconv.ParseInt(v.Expression, 10, 64); err == nil {
			got[v.Name] = n
		}
	}
	want := map[string]int64{
		"maxRequestSlices": api.MaxRequestSlices,
		"maxRequestCore":   api.MaxRequestCore,
		"maxRequestCount":  api.MaxRequestCount,
		"coreUnitsPerGPU":  api.CoreUnitsPerGPU,
		"maxSlicesPerGPU":  api.MaxSlicesPerGPU,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: integer variables of gpuslice-request-shape differ from package api's constants (-api +policy):\n%s", path, diff)
	}
}
