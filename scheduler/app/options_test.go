package app

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/gpuslice/gpuslice/api"
)

// validated returns loopback options that set changed, once Validate
// answered as wantErr says (checkErr); ok is false when the case ends
// there.
func validated(t *testing.T, set func(o *Options), wantErr string) (o *Options, ok bool) {
	t.Helper()
	o = NewOptions()
	o.ListenAddress = "127.0.0.1:8888"
	set(o)
	return o, checkErr(t, o.Validate(), wantErr)
}

// parseFlags parses args with o's flags and completes o.
func parseFlags(t *testing.T, o *Options, args ...string) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	o.Complete(fs)
}

func TestOptionsPolicies(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, []byte(body)) }
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
			o, ok := validated(t, tc.mutate, tc.wantErr)
			if !ok {
				return
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

func TestOptionsValidateAuthAndLeaderElection(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(o *Options)
		wantErr string
	}{
		{name: "loopback without client auth", mutate: func(o *Options) { o.ListenAddress = "127.0.0.1:8888" }},
		{name: "localhost without client auth", mutate: func(o *Options) { o.ListenAddress = "localhost:8888" }},
		{name: "ipv6 loopback without client auth", mutate: func(o *Options) { o.ListenAddress = "[::1]:8888" }},
		{name: "all interfaces without client auth", mutate: func(o *Options) {}, wantErr: `--listen-address ":8888" is not a loopback address`},
		{name: "an interface address without client auth", mutate: func(o *Options) { o.ListenAddress = "10.0.0.5:8888" }, wantErr: "not a loopback address"},
		{name: "explicitly unauthenticated", mutate: func(o *Options) { o.AllowUnauthenticated = true }},
		{name: "mutual TLS", mutate: func(o *Options) { o.TLSCertFile, o.TLSKeyFile, o.ClientCAFile = "c", "k", "ca" }},
		{name: "client CA without HTTPS", mutate: func(o *Options) { o.ClientCAFile = "ca" }, wantErr: "--client-ca-file needs HTTPS"},
		{name: "leader election defaults", mutate: func(o *Options) { o.AllowUnauthenticated = true; o.LeaderElection.Enabled = true }},
		{name: "leader election timings out of order", mutate: func(o *Options) {
			o.AllowUnauthenticated = true
			o.LeaderElection.Enabled = true
			o.LeaderElection.RenewDeadline = 20 * time.Second
		}, wantErr: "retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration"},
		{name: "leader election without a lease name", mutate: func(o *Options) {
			o.AllowUnauthenticated = true
			o.LeaderElection.Enabled = true
			o.LeaderElection.LeaseName = ""
		}, wantErr: "--leader-elect-lease-name must not be empty"},
		{name: "pending limits", mutate: func(o *Options) { o.AllowUnauthenticated = true; o.Pending.MaxNodes = 0 }, wantErr: "--max-pending-nodes must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			tc.mutate(o)
			checkErr(t, o.Validate(), tc.wantErr)
		})
	}
}

// Complete makes an explicit --policy override the policy config file.
func TestOptionsCompleteReadsChangedFlags(t *testing.T) {
	for _, args := range [][]string{nil, {"--policy=spread"}} {
		o := NewOptions()
		parseFlags(t, o, args...)
		if want := len(args) > 0; o.policyFlagSet != want {
			t.Errorf("args %q: policyFlagSet = %v, want %v", args, o.policyFlagSet, want)
		}
	}
}

// --runtime-class-isolation is parsed with the flags and checked by
// Validate, which names the flag.
func TestOptionsRuntimeClassIsolation(t *testing.T) {
	tests := []struct {
		args    []string
		want    api.RuntimeClassModes
		wantErr string
	}{
		{args: nil, want: api.RuntimeClassModes{}},
		{args: []string{"--runtime-class-isolation=kata-vgpu=vgpu,kubevirt=passthrough"},
			want: api.RuntimeClassModes{"kata-vgpu": api.IsolationVGPU, "kubevirt": api.IsolationPassthrough}},
		{args: []string{"--runtime-class-isolation=kata=mps"},
			wantErr: `--runtime-class-isolation "kata=mps": runtime class "kata": mode "mps" is not a VM-sandbox mode`},
		{args: []string{"--runtime-class-isolation=kata=vgpu,kata=passthrough"}, wantErr: `runtime class "kata" is mapped twice`},
		{args: []string{"--runtime-class-isolation=kata"}, wantErr: "want name=mode"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, ok := validated(t, func(o *Options) { parseFlags(t, o, tc.args...) }, tc.wantErr)
			if !ok {
				return
			}
			got, err := o.RuntimeClassModes()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("modes (-want +got):\n%s", diff)
			}
		})
	}
}
