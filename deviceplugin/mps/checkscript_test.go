package mps

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gpuslice/gpuslice/internal/scripttest"
)

const (
	checkScript    = "../../hack/gpu-check-mps.sh"
	checkScriptAll = "../../hack/gpu-check.sh"
	fakeGPUUUID    = "GPU-11111111-2222-3333-4444-555555555555"
)

// fakeSMI is a fake nvidia-smi for hack/gpu-check-mps.sh: one GPU, its
// compute mode kept in a file next to it; driver and CUDA version are %s.
const fakeSMI = `#!/bin/sh
state=${0%%/*}/compute-mode
q=""; mode=""; apps=0
while [ $# -gt 0 ]; do
	case "$1" in
	-L) echo "GPU 0: NVIDIA Fake (UUID: ` + fakeGPUUUID + `)"; exit 0 ;;
	-c) mode=$2; shift ;;
	--query-gpu=*) q=${1#--query-gpu=} ;;
	--query-compute-apps=*) apps=1 ;;
	esac
	shift
done
if [ -n "$mode" ]; then
	case $mode in EXCLUSIVE_PROCESS) echo Exclusive_Process ;; DEFAULT) echo Default ;; *) echo "$mode" ;; esac >"$state"
	exit 0
fi
[ "$apps" = 1 ] && exit 0
case $q in
uuid) echo ` + fakeGPUUUID + ` ;;
name) echo NVIDIA Fake ;;
memory.total) echo "81559 MiB" ;;
compute_cap) echo 9.0 ;;
mig.mode.current) echo Disabled ;;
compute_mode) cat "$state" 2>/dev/null || echo Default ;;
driver_version) echo %[1]s ;;
"") echo "| NVIDIA-SMI %[1]s   Driver Version: %[1]s   CUDA Version: %[2]s     |" ;;
*) exit 1 ;;
esac
`

// runCheckScript runs bash with args (the script first) under PATH and
// returns its combined output and exit code.
func runCheckScript(t *testing.T, path string, args ...string) (string, int) {
	t.Helper()
	return scripttest.Bash(t, []string{"PATH=" + path}, args...)
}

func TestCheckScriptSyntax(t *testing.T) {
	for _, s := range []string{checkScript, checkScriptAll} {
		if out, code := runCheckScript(t, os.Getenv("PATH"), "-n", s); code != 0 {
			t.Errorf("bash -n %s: exit %d:\n%s", s, code, out)
		}
	}
}

// Without nvidia-smi the script stops at its prerequisites (exit 2) before
// touching anything, with or without the v3 section.
func TestCheckScriptPrerequisites(t *testing.T) {
	empty := t.TempDir()
	for _, args := range [][]string{nil, {"--v3"}, {"--v3-only"}, {"--v3-only", "--no-client"}} {
		out, code := runCheckScript(t, empty, append([]string{checkScript}, args...)...)
		if code != 2 || !strings.Contains(out, "SKIP: nvidia-smi not found: no NVIDIA driver here") {
			t.Errorf("%v without nvidia-smi: exit %d, want 2 and the reason:\n%s", args, code, out)
		}
	}
	if out, code := runCheckScript(t, empty, checkScript, "--no-client"); code != 2 || !strings.Contains(out, "--no-client needs --v3-only") {
		t.Errorf("--no-client alone: exit %d, want 2:\n%s", code, out)
	}
}

// fakeTools returns a PATH whose nvidia-cuda-mps-control is testdata/fakectl
// and whose nvidia-smi is fakeSMI with driver and CUDA version.
func fakeTools(t *testing.T, driver, cuda string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("hack/gpu-check-mps.sh needs root")
	}
	dir := filepath.Dir(buildFake(t))
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(fmt.Sprintf(fakeSMI, driver, cuda)), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// The v3 control plane against the fake control program: the plugin's start
// command and TOML, the namespaces' sockets, and the run-time namespace
// commands; the client steps are SKIPped (--no-client).
func TestCheckScriptV3ControlPlane(t *testing.T) {
	path := fakeTools(t, "615.10", "13.4")
	out, code := runCheckScript(t, path, checkScript, "--v3-only", "--no-client", "--keep")
	m := regexp.MustCompile(`logs kept in \S+ and (\S+)/log\n`).FindStringSubmatch(out)
	if m != nil {
		// m[1] is <work>/mps3/<uuid>; remove the script's work directory
		// (mktemp -d /tmp/gpuslice-mps-check.XXXXXX), and nothing else.
		work := filepath.Dir(filepath.Dir(m[1]))
		if !strings.HasPrefix(filepath.Base(work), "gpuslice-mps-check.") || filepath.Base(filepath.Dir(m[1])) != "mps3" {
			t.Fatalf("unexpected v3 directory %q", m[1])
		}
		t.Cleanup(func() { _ = os.RemoveAll(work) })
	}
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a check failed:\n%s", out)
	}
	for _, want := range []string{
		"PASS v3 daemon start (-d -p 3 -a FILE)",
		"PASS v3 socket of TOML namespace gs_0000000000000000000000000000000a_000000000000000a",
		"PASS v3 socket of TOML namespace gs_0000000000000000000000000000000b_000000000000000b",
		"PASS v3 namespace list shows gs_0000000000000000000000000000000a_000000000000000a",
		"PASS v3 namespace get gs_0000000000000000000000000000000a_000000000000000a: pinned_memory_limit 1024 MiB, active_thread_percentage 25",
		"PASS v3 namespace get gs_0000000000000000000000000000000b_000000000000000b: pinned_memory_limit 2048 MiB, active_thread_percentage 50",
		"PASS v3 namespace list of an unknown server",
		"PASS v3 namespace create (run time) gs_0000000000000000000000000000000c_000000000000000c",
		"PASS v3 namespace list shows gs_0000000000000000000000000000000c_000000000000000c",
		"PASS v3 namespace get gs_0000000000000000000000000000000c_000000000000000c: pinned_memory_limit 1536 MiB, active_thread_percentage 25",
		"PASS v3 socket of run-time namespace gs_0000000000000000000000000000000c_000000000000000c",
		"PASS v3 namespace delete (run time) gs_0000000000000000000000000000000c_000000000000000c",
		"PASS v3 namespace list after delete: not listed",
		"PASS v3 namespace get of a deleted namespace",
		"PASS v3 daemon stop (-q)",
		"SKIP v3 client in gs_0000000000000000000000000000000a_000000000000000a: no CUDA client (--no-client)",
		"SKIP v3 client seeing only its namespace",
		"compute mode restored to Default",
		"RESULT: all checks as expected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if m == nil {
		t.Fatalf("no v3 log directory in the output:\n%s", out)
	}
	pipe := filepath.Join(m[1], "pipe")
	log, err := os.ReadFile(filepath.Join(pipe, "commands.log"))
	if err != nil {
		t.Fatal(err)
	}
	toml := filepath.Join(m[1], "mps.toml")
	for _, want := range []string{
		// The plugin's startArgs and v3_commands.go spellings.
		"start visible=" + fakeGPUUUID + " log=" + filepath.Join(m[1], "log") + " protocol=3 config=" + toml,
		strings.Join(nsCommand("list", "", "--format=csv,noheader"), " "),
		"namespace get gs_0000000000000000000000000000000a_000000000000000a " + v3ServerName + " pinned-memory-limit",
		strings.Join(nsCommand("create", "gs_0000000000000000000000000000000c_000000000000000c"), " "),
		strings.Join(nsCommand("set", "gs_0000000000000000000000000000000c_000000000000000c", (&Manager{}).limitFlags(namespace{memMiB: 1536, threads: 25})...), " "),
		strings.Join(nsCommand("delete", "gs_0000000000000000000000000000000c_000000000000000c"), " "),
		"-q",
	} {
		if !strings.Contains(string(log), want+"\n") {
			t.Errorf("commands lack %q:\n%s", want, log)
		}
	}
	applied, err := os.ReadFile(filepath.Join(pipe, "fakectl.applied.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"schema_version = \"1.0\"\n",
		"[servers." + v3ServerName + "]\nallowed_devices = \"" + fakeGPUUUID + "\"\npinned_memory_limit = \"4096M\"\nactive_thread_percentage = \"100\"\nclient_priority = \"0\"\n",
		"[servers." + v3ServerName + ".namespaces.gs_0000000000000000000000000000000a_000000000000000a]\n" + limitsOf("1024M", "25") + "\n",
		"[servers." + v3ServerName + ".namespaces.gs_0000000000000000000000000000000b_000000000000000b]\n" + limitsOf("2048M", "50") + "\n",
	} {
		if !strings.Contains(string(applied), want) {
			t.Errorf("TOML lacks %q:\n%s", want, applied)
		}
	}
}

// Below driver 615 or CUDA 13.4 the v3 section is skipped; --v3-only then
// has nothing to run (exit 2).
func TestCheckScriptV3TooOld(t *testing.T) {
	for _, c := range []struct{ driver, cuda, want string }{
		{"610.1", "13.4", "SKIP: MPS v3: driver '610.1' is older than 615"},
		{"615.10", "13.2", "SKIP: MPS v3: CUDA 13.2 is older than 13.4"},
		{"620.0", "12.10", "SKIP: MPS v3: CUDA 12.10 is older than 13.4"},
	} {
		out, code := runCheckScript(t, fakeTools(t, c.driver, c.cuda), checkScript, "--v3-only", "--no-client")
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("driver %s CUDA %s: exit %d, want 2 and %q:\n%s", c.driver, c.cuda, code, c.want, out)
		}
	}
}
