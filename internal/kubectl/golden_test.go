package kubectl

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// run runs the plugin with args on a fake clientset holding objs and
// returns what it printed on stdout.
func run(t *testing.T, objs []runtime.Object, tty bool, args ...string) (string, error) {
	t.Helper()
	client := fake.NewClientset(objs...)
	var out, errOut bytes.Buffer
	cmd := NewCommand(Options{
		Streams:    genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		Client:     func() (kubernetes.Interface, string, error) { return client, "ml", nil },
		Clock:      clocktesting.NewFakePassiveClock(now),
		IsTerminal: func(io.Writer) bool { return tty },
	})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		tty  bool
	}{
		{name: "inspect_table", args: []string{"inspect"}},
		{name: "inspect_tty", args: []string{"inspect"}, tty: true},
		{name: "inspect_wide", args: []string{"inspect", "-o", "wide"}},
		{name: "inspect_json", args: []string{"inspect", "-o", "json"}},
		{name: "inspect_yaml", args: []string{"inspect", "gpu-a", "-o", "yaml"}},
		{name: "inspect_unhealthy", args: []string{"inspect", "gpu-a", "-d"}},
		{name: "inspect_stale", args: []string{"inspect", "gpu-b", "--details"}},
		{name: "explain_pending", args: []string{"explain", "big"}},
		{name: "explain_models", args: []string{"explain", "a100"}},
		{name: "explain_fits", args: []string{"explain", "small", "--policy", "spread"}},
		{name: "explain_placed", args: []string{"explain", "train"}},
		{name: "explain_stale", args: []string{"explain", "moved"}},
		{name: "explain_json", args: []string{"explain", "big", "-o", "json"}},
		{name: "explain_vgpu", args: []string{"explain", "vm-big", "--runtime-class-isolation", "kata-vgpu=vgpu,kubevirt=passthrough"}},
		{name: "explain_vgpu_unmapped", args: []string{"explain", "vm-big"}},
		{name: "inspect_vgpu", args: []string{"inspect", "gpu-v", "-o", "wide", "-d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, cluster(t), tc.tty, tc.args...)
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			golden(t, tc.name, got)
		})
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestColourKeepsAlignment checks that the coloured table is the plain one
// with colour codes added: the codes do not shift the columns.
func TestColourKeepsAlignment(t *testing.T) {
	for _, args := range [][]string{{"inspect"}, {"inspect", "-o", "wide", "-d"}} {
		plain, err := run(t, cluster(t), false, args...)
		if err != nil {
			t.Fatal(err)
		}
		colour, err := run(t, cluster(t), true, args...)
		if err != nil {
			t.Fatal(err)
		}
		if colour == plain {
			t.Errorf("%v: no colour on a terminal", args)
		}
		if ansi.MatchString(plain) {
			t.Errorf("%v: colour codes when stdout is not a terminal:\n%q", args, plain)
		}
		if diff := cmp.Diff(plain, ansi.ReplaceAllString(colour, "")); diff != "" {
			t.Errorf("%v: coloured output is not the plain one plus colour (-plain +stripped):\n%s", args, diff)
		}
	}
	forced, err := run(t, cluster(t), false, "inspect", "--color", "always")
	if err != nil || !ansi.MatchString(forced) {
		t.Errorf("--color always: err %v, colour %v", err, ansi.MatchString(forced))
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown node", []string{"inspect", "nope"}, `node "nope" has no gpuslice inventory`},
		{"node without GPUs", []string{"inspect", "cpu-1"}, `node "cpu-1" has no gpuslice inventory`},
		{"bad output", []string{"inspect", "-o", "xml"}, `unknown output format "xml"`},
		{"wide is for inspect", []string{"explain", "big", "-o", "wide"}, `unknown output format "wide"`},
		{"bad colour", []string{"inspect", "--color", "pink"}, "--color must be auto, always or never"},
		{"bad policy", []string{"explain", "big", "--policy", "random"}, "--policy"},
		{"no such pod", []string{"explain", "ghost"}, "get pod"},
		{"cpu pod", []string{"explain", "web"}, "pod ml/web requests no gpuslice resources"},
		{"two nodes", []string{"inspect", "a", "b"}, "accepts at most 1 arg"},
		{"bad runtime class mapping", []string{"explain", "big", "--runtime-class-isolation", "kata=mps"}, `--runtime-class-isolation: runtime class "kata": mode "mps" is not a VM-sandbox mode`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, cluster(t), false, tc.args...)
			if err == nil || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(err.Error()) {
				t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
			}
		})
	}
}
