package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestShippedExtenderEnv reads the install manifest's extender environment
// (literal values only) and refuses a manifest without exactly one
// extender container.
func TestShippedExtenderEnv(t *testing.T) {
	got, err := ShippedExtenderEnv(filepath.Join("..", "..", ShippedDeployment))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"GOMEMLIMIT=256MiB"}, got); diff != "" {
		t.Errorf("shipped extender env (-want +got):\n%s", diff)
	}
	pol, err := ShippedExtenderPolicy(filepath.Join("..", "..", ShippedDeployment))
	if err != nil || pol != "gpuslice" {
		t.Errorf("shipped policy %q, %v; want gpuslice (the chart's extender.policy)", pol, err)
	}
	dir := t.TempDir()
	dep := `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - {name: extender, image: i, args: [--policy=spread], env: [{name: A, value: "1"}]}
`
	for _, tc := range []struct {
		name, manifest string
		want           []string
		policy         string
		err            string
	}{
		{"one", dep, []string{"A=1"}, "spread", ""},
		{"two", dep + "---\n" + dep, nil, "", "2 extender containers"},
		{"none", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", nil, "", "0 extender containers"},
	} {
		p := filepath.Join(dir, tc.name+".yaml")
		if err := os.WriteFile(p, []byte(tc.manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ShippedExtenderEnv(p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		if pol, err := ShippedExtenderPolicy(p); err != nil || pol != tc.policy {
			t.Errorf("%s: policy %q, %v; want %q", tc.name, pol, err, tc.policy)
		}
	}
	noPolicy := filepath.Join(dir, "nopolicy.yaml")
	if err := os.WriteFile(noPolicy, []byte(strings.Replace(dep, "args: [--policy=spread], ", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ShippedExtenderPolicy(noPolicy); err == nil || !strings.Contains(err.Error(), "no --policy") {
		t.Errorf("manifest without --policy: error %v", err)
	}
}

// TestStartProcessEnv: a process gets the harness's environment plus the
// given variables.
func TestStartProcessEnv(t *testing.T) {
	sp := newSpawner()
	defer sp.close()
	t.Setenv("GPUSLICE_HARNESS_OUTER", "outer")
	log := filepath.Join(t.TempDir(), "p.log")
	p, err := startProcess(sp, "sh", "/bin/sh", []string{"-c", `echo "got $GPUSLICE_HARNESS_OUTER $GOMEMLIMIT"`}, []string{"GOMEMLIMIT=64MiB"}, log)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit")
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "got outer 64MiB\n") {
		t.Errorf("log:\n%s", b)
	}
}
