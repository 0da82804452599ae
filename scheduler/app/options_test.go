package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOptionsPolicies(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "policy: spread\nprofiles:\n  frag: gpuslice\n  pack: binpack\n")
	tests := []struct {
		name        string
		mutate      func(o *Options)
		wantDefault string
		want        []string
		wantErr     string
	}{
		{name: "defaults", mutate: func(*Options) {}, wantDefault: "binpack", want: []string{}},
		{name: "flag", mutate: func(o *Options) { o.Policy = "fgd"; o.ProfilePolicies = map[string]string{"x": "spread"} }, wantDefault: "fgd", want: []string{"x=spread"}},
		{name: "file", mutate: func(o *Options) { o.PolicyConfig = good }, wantDefault: "spread", want: []string{"frag=gpuslice", "pack=binpack"}},
		{name: "flags override file", mutate: func(o *Options) {
			o.PolicyConfig = good
			o.Policy = "fgd"
			o.policyFlagSet = true
			o.ProfilePolicies = map[string]string{"frag": "spread"}
		}, wantDefault: "fgd", want: []string{"frag=spread", "pack=binpack"}},
		{name: "unknown policy", mutate: func(o *Options) { o.ProfilePolicies = map[string]string{"x": "tetris"} }, wantErr: `profile "x": unknown placement policy "tetris"`},
		{name: "unknown field", mutate: func(o *Options) { o.PolicyConfig = write("bad.yaml", "polcy: spread\n") }, wantErr: `unknown field "polcy"`},
		{name: "missing file", mutate: func(o *Options) { o.PolicyConfig = filepath.Join(dir, "nope.yaml") }, wantErr: "read policy config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			tc.mutate(o)
			err := o.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps, err := o.Policies()
			if err != nil {
				t.Fatal(err)
			}
			if got := ps.For("unknown-profile").Name(); got != tc.wantDefault {
				t.Errorf("default policy = %q, want %q", got, tc.wantDefault)
			}
			if diff := cmp.Diff(tc.want, ps.Describe()); diff != "" {
				t.Errorf("profiles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	o := NewOptions()
	o.SliceMiB = 100
	o.ListenAddress = "nope"
	o.TLSCertFile = "cert.pem"
	o.QPS = 0
	err := o.Validate()
	for _, want := range []string{"--listen-address", "--tls-cert-file and --tls-private-key-file", "--slice-mib 100 is below the minimum of 256", "--kube-api-qps"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
