package mps

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// v3Commands are the v3 commands the fake recorded for daemon id, without
// the health probes (namespace list).
func (e *env) v3Commands(id string) []string {
	e.t.Helper()
	var out []string
	for _, c := range e.commands(id) {
		if !strings.HasPrefix(c, "namespace list") {
			out = append(out, c)
		}
	}
	return out
}

// nsLimits reads the limits the fake holds for namespace name of daemon
// id; "" when the namespace does not exist.
func (e *env) nsLimits(id, name string) string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(NamespaceDir(e.pipeDir(id), name), "limits"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// applied is the TOML file the fake daemon id last applied.
func (e *env) applied(id string) string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.pipeDir(id), "fakectl.applied.toml"))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(raw)
}

func limitsOf(mem, threads string) string {
	return `pinned_memory_limit = "` + mem + `"` + "\n" + `active_thread_percentage = "` + threads + `"` + "\n" + `client_priority = "0"`
}

// Pod UIDs of the tests (Kubernetes UIDs are UUIDs).
const (
	pod1    = "0b6c11aa-0000-4000-8000-000000000001"
	pod2    = "0b6c11aa-0000-4000-8000-000000000002"
	podGone = "0b6c11aa-0000-4000-8000-00000000dead"
)

// nsName is the namespace of container ctr of pod uid.
func nsName(t *testing.T, uid, ctr string) string {
	t.Helper()
	name, err := NamespaceName(device.ContainerRef{PodUID: uid, Container: ctr})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// startV3With starts an MPS v3 manager (cfg, version 3) on GPU A whose
// pod1 container "main" has mem MiB and threads percent; it returns the
// env and that container's namespace.
func startV3With(t *testing.T, fake string, cfg Config, mem int64, threads int) (*env, string) {
	t.Helper()
	cfg.Version = VersionV3
	e := newEnv(t, fake, cfg)
	e.start(gpuA())
	ref := device.ContainerRef{PodUID: pod1, Container: "main"}
	if _, err := e.m.ContainerEditsFor(ref, []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: mem, ThreadPercentage: threads}}); err != nil {
		t.Fatal(err)
	}
	return e, nsName(t, pod1, "main")
}

// restarted waits for the unhealthy event of a dead daemon, then for the
// healthy one of its restart.
func (e *env) restarted(wantReason string) {
	e.t.Helper()
	if ev := e.event(); ev.Healthy || !strings.Contains(ev.Reason, wantReason) {
		e.t.Fatalf("event %+v, want unhealthy: %q", ev, wantReason)
	}
	if ev := e.event(); !ev.Healthy {
		e.t.Fatalf("event %+v, want healthy after the restart", ev)
	}
}

func TestV3ConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    int
		wantErr string
	}{
		{name: "legacy by default", cfg: Config{}, want: VersionLegacy},
		{name: "v3", cfg: Config{Version: VersionV3}, want: VersionV3},
		{name: "explicit legacy", cfg: Config{Version: VersionLegacy}, want: VersionLegacy},
		{name: "v3, below-normal priority", cfg: Config{Version: VersionV3, ClientPriority: 1}, want: VersionV3},
		{name: "unknown version", cfg: Config{Version: 4}, wantErr: "version 4: must be 2 (legacy MPS) or 3 (MPS v3)"},
		{name: "negative grace", cfg: Config{Version: VersionV3, ReleaseGrace: -time.Second}, wantErr: "release grace"},
		{name: "unknown client priority", cfg: Config{Version: VersionV3, ClientPriority: 2}, wantErr: "client priority 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if !errorMatches(t, err, tt.wantErr) {
				return
			}
			if got.Version != tt.want || got.ReleaseGrace != DefaultReleaseGrace {
				t.Errorf("version %d, grace %v; want %d, %v", got.Version, got.ReleaseGrace, tt.want, DefaultReleaseGrace)
			}
		})
	}
}

func TestNamespaceName(t *testing.T) {
	tests := []struct {
		ref     device.ContainerRef
		want    string
		wantErr bool
	}{
		{ref: device.ContainerRef{PodUID: pod1, Container: "main"}, want: "gs_0b6c11aa000040008000000000000001_" + shaPrefix("main")},
		{ref: device.ContainerRef{PodUID: "0B6C11AA000040008000000000000001", Container: "main"}, want: "gs_0b6c11aa000040008000000000000001_" + shaPrefix("main")},
		{ref: device.ContainerRef{PodUID: pod1, Container: strings.Repeat("c", 63)}, want: "gs_0b6c11aa000040008000000000000001_" + shaPrefix(strings.Repeat("c", 63))},
		{ref: device.ContainerRef{PodUID: "", Container: "main"}, wantErr: true},
		{ref: device.ContainerRef{PodUID: "pod-1", Container: "main"}, wantErr: true},
		{ref: device.ContainerRef{PodUID: "0b6c11aa0-000-4000-8000-000000000001", Container: "main"}, wantErr: true},
		{ref: device.ContainerRef{PodUID: "zb6c11aa-0000-4000-8000-000000000001", Container: "main"}, wantErr: true},
		{ref: device.ContainerRef{PodUID: pod1, Container: ""}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := NamespaceName(tt.ref)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("NamespaceName(%+v) = %q, %v; want %q (error %v)", tt.ref, got, err, tt.want, tt.wantErr)
		}
		if err != nil {
			continue
		}
		key, _ := PodKey(tt.ref.PodUID)
		if pod, ok := namespacePod(got); !ok || pod != key {
			t.Errorf("namespacePod(%q) = %q, %v; want %q", got, pod, ok, key)
		}
		if len(got) > maxNamespaceName || strings.ContainsFunc(got, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' }) {
			t.Errorf("NamespaceName(%+v) = %q: not a name NVIDIA allows (lowercase letters, digits, '_', at most 64)", tt.ref, got)
		}
	}
}

func shaPrefix(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:containerKeyLen]
}

func TestV3NamespaceLifecycle(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{Version: VersionV3, DefaultActiveThreadPercentage: 40, MaxClientThreadPercentage: 80})
	e.start(gpuA())
	id := "GPU-aaaa"

	wantTOML := `# Written by the gpuslice device plugin; applied with nvidia-cuda-mps-control -d -p 3 -a.
schema_version = "1.0"

[servers.gpuslice]
allowed_devices = "GPU-aaaa"
pinned_memory_limit = "81920M"
active_thread_percentage = "80"
client_priority = "0"
`
	if diff := cmp.Diff(wantTOML, e.applied(id)); diff != "" {
		t.Errorf("applied TOML (-want +got):\n%s", diff)
	}
	if got := e.m.Enforcement(); got != api.EnforcementCeiling {
		t.Errorf("Enforcement without hard limits = %q, want ceiling", got)
	}

	// Two containers of two pods on one GPU: two namespaces whose limits
	// are their shares, each container mounting only its own.
	type ctr struct {
		ref        device.ContainerRef
		mem        int64
		core       int
		wantLimits string
	}
	ctrs := []ctr{
		{ref: device.ContainerRef{PodUID: pod1, Container: "main"}, mem: 4096, core: 30, wantLimits: limitsOf("4096M", "30")},
		{ref: device.ContainerRef{PodUID: pod2, Container: "main"}, mem: 10240, core: 0, wantLimits: limitsOf("10240M", "40")},
	}
	for _, c := range ctrs {
		edits, err := e.m.ContainerEditsFor(c.ref, []device.ContainerDevice{{UUID: id, MemLimitMiB: c.mem, ThreadPercentage: c.core}})
		if err != nil {
			t.Fatalf("ContainerEditsFor(%+v): %v", c.ref, err)
		}
		name, _ := NamespaceName(c.ref)
		want := &device.ContainerEdits{
			Envs: map[string]string{EnvPipeDirectory: DefaultContainerPipeDir},
			Mounts: []device.Mount{
				{ContainerPath: DefaultContainerPipeDir, HostPath: filepath.Join(e.pipeDir(id), "gpuslice", name)},
				{ContainerPath: "/dev/shm", HostPath: filepath.Join(e.root, id, "shm")},
			},
		}
		if diff := cmp.Diff(want, edits); diff != "" {
			t.Errorf("edits of %s (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff(c.wantLimits, e.nsLimits(id, name)); diff != "" {
			t.Errorf("limits of namespace %s (-want +got):\n%s", name, diff)
		}
	}
	// Allocate again with the same share keeps the namespace; with
	// another share it sets the namespace's limits anew.
	if _, err := e.m.ContainerEditsFor(ctrs[0].ref, []device.ContainerDevice{{UUID: id, MemLimitMiB: 4096, ThreadPercentage: 30}}); err != nil {
		t.Fatal(err)
	}
	n1, n2 := nsName(t, pod1, "main"), nsName(t, pod2, "main")
	if _, err := e.m.ContainerEditsFor(ctrs[1].ref, []device.ContainerDevice{{UUID: id, MemLimitMiB: 8192, ThreadPercentage: 40}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(limitsOf("8192M", "40"), e.nsLimits(id, n2)); diff != "" {
		t.Errorf("limits of the changed namespace (-want +got):\n%s", diff)
	}
	wantCmds := []string{
		"-q", // a stale daemon is stopped first
		"start visible=GPU-aaaa log=" + filepath.Join(e.root, id, "log") + " protocol=3 config=" + filepath.Join(e.root, id, "mps.toml"),
		"namespace create " + n1 + " --server=gpuslice",
		"namespace set " + n1 + " --server=gpuslice --pinned-memory-limit=4096M --active-thread-percentage=30 --client-priority=0",
		"namespace create " + n2 + " --server=gpuslice",
		"namespace set " + n2 + " --server=gpuslice --pinned-memory-limit=10240M --active-thread-percentage=40 --client-priority=0",
		"namespace set " + n2 + " --server=gpuslice --pinned-memory-limit=8192M --active-thread-percentage=40 --client-priority=0",
	}
	if diff := cmp.Diff(wantCmds, e.v3Commands(id)); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}

	// pod-2 is gone: its namespace is kept through the grace period, then
	// deleted; pod-1's stays.
	live := map[string]bool{pod1: true}
	e.m.ReleasePods(e.ctx, live)
	if e.nsLimits(id, n2) == "" {
		t.Fatal("namespace of pod-2 deleted within the release grace")
	}
	e.clk.Step(DefaultReleaseGrace)
	e.m.ReleasePods(e.ctx, live)
	if got := e.nsLimits(id, n2); got != "" {
		t.Errorf("namespace of released pod-2 still exists: %q", got)
	}
	if diff := cmp.Diff([]string{n1}, e.m.Namespaces(id)); diff != "" {
		t.Errorf("Namespaces (-want +got):\n%s", diff)
	}
	if got := e.v3Commands(id); got[len(got)-1] != "namespace delete "+n2+" --server=gpuslice" {
		t.Errorf("last command %q, want the delete of %s", got[len(got)-1], n2)
	}
}

func TestV3ContainerEditsRefusals(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{Version: VersionV3, Scope: ScopeNode})
	e.start(gpuA(), gpuB())
	ref := device.ContainerRef{PodUID: pod1, Container: "c"}
	tests := []struct {
		name    string
		ref     device.ContainerRef
		devs    []device.ContainerDevice
		wantErr string
	}{
		{name: "shares differ between GPUs", ref: ref, devs: []device.ContainerDevice{
			{UUID: "GPU-aaaa", MemLimitMiB: 4096}, {UUID: "GPU-bbbb", HostIndex: 1, ContainerIndex: 1, MemLimitMiB: 2048}},
			wantErr: "one pinned memory limit"},
		{name: "pod UID not a UUID", ref: device.ContainerRef{PodUID: "p", Container: "c"}, devs: []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 4096}},
			wantErr: "not a UUID"},
		{name: "no memory share", ref: ref, devs: []device.ContainerDevice{{UUID: "GPU-aaaa"}}, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.m.ContainerEditsFor(tt.ref, tt.devs)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := e.m.ContainerEdits([]device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 4096}}); err == nil {
		t.Error("ContainerEdits without the container's name in v3: no error")
	}
	// Both GPUs of one node daemon with equal shares: one namespace.
	if _, err := e.m.ContainerEditsFor(ref, []device.ContainerDevice{
		{UUID: "GPU-aaaa", MemLimitMiB: 4096}, {UUID: "GPU-bbbb", HostIndex: 1, ContainerIndex: 1, MemLimitMiB: 4096}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(limitsOf("4096M", "100"), e.nsLimits("node", nsName(t, pod1, "c"))); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
}

func TestV3AdoptionAfterPluginRestart(t *testing.T) {
	fake := buildFake(t)
	first, n1 := startV3With(t, fake, Config{}, 8192, 50)
	id := "GPU-aaaa"

	// A new plugin process over the same daemon (the first one's
	// supervision is idle: its clock does not move).
	second := newEnvAt(t, fake, Config{Version: VersionV3}, first.root)
	second.start(gpuA())
	starts := 0
	for _, c := range second.v3Commands(id) {
		if strings.HasPrefix(c, "start ") {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("daemon started %d times, want once (adopted, not restarted)", starts)
	}
	if diff := cmp.Diff([]string{n1}, second.m.Namespaces(id)); diff != "" {
		t.Errorf("adopted namespaces (-want +got):\n%s", diff)
	}
	// The adopted namespace keeps its limits, also through a restart of
	// the daemon, and is released like one the plugin created.
	second.remove(id, "fakectl.alive")
	second.restarted("does not answer")
	if !strings.Contains(second.applied(id), "[servers.gpuslice.namespaces."+n1+"]\n"+limitsOf("8192M", "50")+"\n") {
		t.Errorf("restart TOML lacks the adopted namespace:\n%s", second.applied(id))
	}
	if diff := cmp.Diff(limitsOf("8192M", "50"), second.nsLimits(id, n1)); diff != "" {
		t.Errorf("limits after the restart (-want +got):\n%s", diff)
	}
	second.clk.Step(DefaultReleaseGrace)
	second.m.ReleasePods(second.ctx, map[string]bool{})
	if got := second.nsLimits(id, n1); got != "" {
		t.Errorf("adopted namespace of a gone pod not deleted: %q", got)
	}
}

func TestV3DaemonDiesAndNamespaceLost(t *testing.T) {
	e, n1 := startV3With(t, buildFake(t), Config{}, 2048, 20)
	id := "GPU-aaaa"

	// The daemon dies: unhealthy, restarted with the namespace in its TOML.
	e.remove(id, "fakectl.alive")
	e.restarted("does not answer")
	if diff := cmp.Diff(limitsOf("2048M", "20"), e.nsLimits(id, n1)); diff != "" {
		t.Errorf("limits after the restart (-want +got):\n%s", diff)
	}

	// The server loses the namespace while the daemon lives: the next
	// probe creates it again, without a restart.
	if err := os.RemoveAll(NamespaceDir(e.pipeDir(id), n1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lost namespace created again", func() bool {
		e.clk.Step(testInterval)
		return e.nsLimits(id, n1) != ""
	})
	if diff := cmp.Diff(limitsOf("2048M", "20"), e.nsLimits(id, n1)); diff != "" {
		t.Errorf("limits of the recreated namespace (-want +got):\n%s", diff)
	}

	// While the daemon is down, a released namespace is only forgotten.
	e.touch(id, "fakectl.failstart")
	e.remove(id, "fakectl.alive")
	if ev := e.event(); ev.Healthy {
		t.Fatalf("event %+v, want unhealthy", ev)
	}
	e.clk.Step(DefaultReleaseGrace)
	e.m.ReleasePods(e.ctx, nil)
	if got := e.m.Namespaces(id); len(got) != 0 {
		t.Errorf("namespaces of a down daemon after release: %v, want none", got)
	}
}

func TestLegacyPodReleaser(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{})
	e.start(gpuA())
	devs := []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 4096, ThreadPercentage: 30}}
	want, err := e.m.ContainerEdits(devs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.m.ContainerEditsFor(device.ContainerRef{PodUID: pod1, Container: "c"}, devs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("legacy ContainerEditsFor differs from ContainerEdits (-want +got):\n%s", diff)
	}
	e.m.ReleasePods(e.ctx, nil) // nothing to release, nothing run
	if e.m.Enforcement() != api.EnforcementCeiling {
		t.Errorf("legacy Enforcement = %q, want ceiling", e.m.Enforcement())
	}
}

func TestStartArgs(t *testing.T) {
	tests := []struct {
		name string
		spec DaemonSpec
		want []string
	}{
		{name: "legacy", spec: DaemonSpec{}, want: []string{"-d"}},
		{name: "legacy multi-user", spec: DaemonSpec{MultiUser: true}, want: []string{"-d", "-multiuser-server"}},
		{name: "v3", spec: DaemonSpec{Protocol: VersionV3, ConfigFile: "/r/x/mps.toml"}, want: []string{"-d", "-p", "3", "-a", "/r/x/mps.toml"}},
		{name: "v3 multi-user", spec: DaemonSpec{Protocol: VersionV3, MultiUser: true, ConfigFile: "/f"}, want: []string{"-d", "-p", "3", "-m", "-a", "/f"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.spec.startArgs()); diff != "" {
			t.Errorf("%s: start args (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestV3Stop(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{Version: VersionV3})
	e.start(gpuA())
	e.m.Stop()
	if _, err := os.Stat(filepath.Join(e.pipeDir("GPU-aaaa"), "fakectl.alive")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("daemon still alive after Stop: %v", err)
	}
	got := e.v3Commands("GPU-aaaa")
	if got[len(got)-1] != "-q" {
		t.Errorf("last command %q, want -q (MPS v3 quit)", got[len(got)-1])
	}
	if _, err := e.m.ContainerEditsFor(device.ContainerRef{PodUID: pod1, Container: "c"}, []device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 1024}}); err == nil {
		t.Error("ContainerEditsFor after Stop: no error")
	}
	e.m.ReleasePods(e.ctx, nil) // a stopped manager runs nothing
}

func TestV3ReleaseOfVanishedNamespace(t *testing.T) {
	fake := buildFake(t)
	// No probe while the clock moves by the grace: it would create the
	// lost namespace again.
	e := newEnv(t, fake, Config{Version: VersionV3, HealthInterval: 2 * DefaultReleaseGrace})
	e.start(gpuA())
	id := "GPU-aaaa"
	for _, pod := range []string{podGone, pod1} {
		if _, err := e.m.ContainerEditsFor(device.ContainerRef{PodUID: pod, Container: "c"}, []device.ContainerDevice{{UUID: id, MemLimitMiB: 1024}}); err != nil {
			t.Fatal(err)
		}
	}
	// The server lost the gone pod's namespace; its pod is released: the
	// failed delete does not keep it forever.
	gone, kept := nsName(t, podGone, "c"), nsName(t, pod1, "c")
	if err := os.RemoveAll(NamespaceDir(e.pipeDir(id), gone)); err != nil {
		t.Fatal(err)
	}
	e.clk.Step(DefaultReleaseGrace)
	e.m.ReleasePods(e.ctx, map[string]bool{pod1: true})
	if diff := cmp.Diff([]string{kept}, e.m.Namespaces(id)); diff != "" {
		t.Errorf("Namespaces (-want +got):\n%s", diff)
	}
	if got := e.v3Commands(id); got[len(got)-1] != "namespace delete "+gone+" --server=gpuslice" {
		t.Errorf("last command %q, want the failed delete of %s", got[len(got)-1], gone)
	}
}

func TestNamespacePod(t *testing.T) {
	key := "0b6c11aa000040008000000000000001"
	for _, tc := range []struct {
		name, pod string
		ok        bool
	}{
		{"gs_" + key + "_" + shaPrefix("main"), key, true},
		{"default", "", false},
		{"gs_" + key, "", false},
		{"gs__" + shaPrefix("main"), "", false},
		{"gs_" + key + "_", "", false},
		{"gs_" + key + "_../../etc", "", false},
		{"gs_" + key + "_" + shaPrefix("main") + "0", "", false},
		{"gs_" + strings.ToUpper(key) + "_" + shaPrefix("main"), "", false},
		{"gs_" + key + "_" + shaPrefix("main")[:15] + "g", "", false},
	} {
		pod, ok := namespacePod(tc.name)
		if ok != tc.ok || (ok && pod != tc.pod) {
			t.Errorf("namespacePod(%q) = %q, %v; want %q, %v", tc.name, pod, ok, tc.pod, tc.ok)
		}
	}
}

func TestParseNamespaceList(t *testing.T) {
	row := func(name, server, mem, threads string) string {
		return name + "," + server + ",Ready," + mem + "," + threads + ",0,/run/mps/" + server + "/" + name + "\n"
	}
	tests := []struct {
		name    string
		out     string
		want    []nsRow
		wantErr string
	}{
		{name: "NVIDIA's columns", out: row("default", "gpuslice", "-", "-") + row("gs_a", "gpuslice", "4096M", "30.00") + row("gs_b", "gpuslice", "2G", "12.6"),
			want: []nsRow{{name: "default"}, {name: "gs_a", memMiB: 4096, threads: 30}, {name: "gs_b", memMiB: 2048, threads: 13}}},
		{name: "kibibytes", out: row("n", "gpuslice", "1048576K", "5"), want: []nsRow{{name: "n", memMiB: 1024, threads: 5}}},
		{name: "another server's rows are skipped", out: row("x", "other", "bad", "bad") + "\n", want: nil},
		{name: "empty", out: "", want: nil},
		{name: "too few columns", out: "gs_a,gpuslice,Ready\n", wantErr: "3 columns, want 7"},
		{name: "memory without a unit", out: row("n", "gpuslice", "4096", "5"), wantErr: "want <n>K, <n>M or <n>G"},
		{name: "memory out of bounds", out: row("n", "gpuslice", "99999999999999999G", "5"), wantErr: "at most"},
		{name: "threads out of bounds", out: row("n", "gpuslice", "1G", "250"), wantErr: "not 0..100"},
		{name: "threads NaN", out: row("n", "gpuslice", "1G", "NaN"), wantErr: "not 0..100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNamespaceList(tt.out)
			if !errorMatches(t, err, tt.wantErr) {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(nsRow{})); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzV3Output: whatever a daemon answers to `namespace list`, parsing
// never panics, limits stay in bounds, and only names that NamespaceName
// could produce are ever taken as gpuslice's.
func FuzzV3Output(f *testing.F) {
	f.Add("gs_0b6c11aa000040008000000000000001_" + shaPrefix("main") + ",gpuslice,Ready,4096M,30.00,0,/p\n")
	f.Add("default,gpuslice,Ready,-,-,0,/p\nx,y")
	f.Add("n,gpuslice,Ready,1e309G,1,0,/p")
	f.Fuzz(func(t *testing.T, out string) {
		rows, err := parseNamespaceList(out)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.memMiB < 0 || r.memMiB > api.MaxMemoryMiBPerGPU || r.threads < 0 || r.threads > 100 {
				t.Fatalf("%q: limits %d MiB, %d%%", out, r.memMiB, r.threads)
			}
			pod, ok := namespacePod(r.name)
			if ok && (len(r.name) > maxNamespaceName || !strings.HasPrefix(r.name, namespacePrefix+pod+"_")) {
				t.Fatalf("%q taken as gpuslice's namespace of pod %q", r.name, pod)
			}
		}
	})
}
