package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/internal/version"
)

func TestExecute(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		runErr     error
		wantCode   int
		wantRun    bool
		wantStdout string
		wantStderr string
	}{
		{name: "runs", wantCode: ExitOK, wantRun: true},
		{name: "version", args: []string{"--version"}, wantCode: ExitOK, wantStdout: version.Version + "\n"},
		{name: "help", args: []string{"--help"}, wantCode: ExitOK, wantStderr: "--name"},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: ExitUsage, wantStderr: "unknown flag: --nope"},
		{name: "usage error", runErr: Usage(errors.New("--name is empty")), wantCode: ExitUsage, wantRun: true, wantStderr: "invalid options:\n--name is empty"},
		{name: "failure", runErr: errors.New("boom"), wantCode: ExitFailed, wantRun: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ran bool
			var changed bool
			var stdout, stderr bytes.Buffer
			c := Command{
				Name:     "test-cmd",
				AddFlags: func(fs *pflag.FlagSet) { fs.String("name", "x", "A name.") },
				Run: func(ctx context.Context, fs *pflag.FlagSet) error {
					ran, changed = true, fs.Changed("name")
					if klog.FromContext(ctx).GetSink() == nil {
						t.Error("context carries no logger")
					}
					return tc.runErr
				},
			}
			code := c.Execute(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.wantCode || ran != tc.wantRun {
				t.Errorf("Execute(%q) = %d, ran %v; want %d, ran %v (stderr %q)", tc.args, code, ran, tc.wantCode, tc.wantRun, stderr.String())
			}
			if changed {
				t.Error("fs.Changed(name) is true without --name")
			}
			if tc.wantStdout != "" && stdout.String() != tc.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestExecuteChangedFlag(t *testing.T) {
	var got string
	c := Command{
		Name:     "test-cmd",
		AddFlags: func(fs *pflag.FlagSet) { fs.String("name", "x", "A name.") },
		Run: func(_ context.Context, fs *pflag.FlagSet) error {
			if fs.Changed("name") {
				got, _ = fs.GetString("name")
			}
			return nil
		},
	}
	var out bytes.Buffer
	if code := c.Execute(t.Context(), []string{"--name", "y"}, &out, &out); code != ExitOK || got != "y" {
		t.Fatalf("Execute = %d, name %q; want 0, %q", code, got, "y")
	}
}
