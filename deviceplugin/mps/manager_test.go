package mps

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

func TestNewManagerConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" for success
	}{
		{name: "defaults", cfg: Config{}},
		{name: "explicit", cfg: Config{Root: "/run/x", DefaultActiveThreadPercentage: 25, MaxClientThreadPercentage: 50, Scope: ScopeNode, ClientCap: 60, DevShm: ShmNone}},
		{name: "percentage above 100", cfg: Config{DefaultActiveThreadPercentage: 101}, wantErr: "default active thread percentage 101: must be within 1..100"},
		{name: "negative percentage", cfg: Config{DefaultActiveThreadPercentage: -5}, wantErr: "must be within 1..100"},
		{name: "default above ceiling", cfg: Config{DefaultActiveThreadPercentage: 60, MaxClientThreadPercentage: 50}, wantErr: "above the max client thread percentage 50"},
		{name: "memory percent above 100", cfg: Config{MaxClientMemoryPercent: 150}, wantErr: "max client memory percent 150"},
		{name: "relative root", cfg: Config{Root: "run/mps"}, wantErr: `root "run/mps": must be an absolute path`},
		{name: "relative container dir", cfg: Config{ContainerPipeDir: "mps"}, wantErr: "container pipe dir"},
		{name: "container dir is /dev/shm", cfg: Config{ContainerPipeDir: "/dev/shm/"}, wantErr: "must not be /dev/shm"},
		{name: "bad scope", cfg: Config{Scope: "rack"}, wantErr: `scope "rack"`},
		{name: "bad shm mode", cfg: Config{DevShm: "host"}, wantErr: `dev shm mode "host"`},
		{name: "client cap too high", cfg: Config{ClientCap: 61}, wantErr: "client cap 61"},
		{name: "negative interval", cfg: Config{HealthInterval: -time.Second}, wantErr: "health interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(tt.cfg, NewExecControl("x"), &fakeModes{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewManager: %v", err)
				}
				m.Stop()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewManager error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	m, err := NewManager(Config{ControlBinary: "/opt/mps-control"}, nil, &fakeModes{})
	if err != nil {
		t.Fatalf("NewManager with nil Control: %v", err)
	}
	if ec, ok := m.ctl.(*ExecControl); !ok || ec.Binary != "/opt/mps-control" {
		t.Errorf("nil Control became %#v, want an ExecControl of /opt/mps-control", m.ctl)
	}
	if _, err := NewManager(Config{}, NewExecControl("x"), nil); err == nil {
		t.Error("NewManager with nil ComputeModeSetter: no error")
	}
}

func TestStartRefusesGPUs(t *testing.T) {
	fake := buildFake(t)
	pascal := gpuA()
	pascal.Major, pascal.MinorCC = 6, 1
	mig := gpuA()
	mig.MIGEnabled = true
	noMem := gpuA()
	noMem.MemoryMiB = 0
	badUUID := gpuA()
	badUUID.UUID = "../etc"
	tests := []struct {
		name    string
		gpus    []device.GPU
		wantErr string
	}{
		{name: "none", gpus: nil, wantErr: "no GPUs"},
		{name: "MIG", gpus: []device.GPU{mig}, wantErr: "MIG is enabled; MPS mode is refused"},
		{name: "pre-Volta", gpus: []device.GPU{pascal}, wantErr: "compute capability 6.1 is older than Volta (7.0); MPS mode is refused"},
		{name: "MIG beside a good GPU", gpus: []device.GPU{gpuB(), mig}, wantErr: "GPU-aaaa: MIG is enabled"},
		{name: "zero memory", gpus: []device.GPU{noMem}, wantErr: "memory 0 MiB must be positive"},
		{name: "bad UUID", gpus: []device.GPU{badUUID}, wantErr: `invalid UUID "../etc"`},
		{name: "duplicate", gpus: []device.GPU{gpuA(), gpuA()}, wantErr: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fake, Config{})
			err := e.m.Start(e.ctx, tt.gpus)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start error = %v, want it to contain %q", err, tt.wantErr)
			}
			if excl, _ := e.modes.calls(); len(excl) != 0 {
				t.Errorf("compute mode changed for refused GPUs: %v", excl)
			}
			if entries, _ := os.ReadDir(e.root); len(entries) != 0 {
				t.Errorf("daemon directories created for refused GPUs: %v", entries)
			}
		})
	}
}

func TestStartGPUScope(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{MaxClientMemoryPercent: 50, MaxClientThreadPercentage: 80, DefaultActiveThreadPercentage: 40})
	e.start(gpuB(), gpuA())

	for _, g := range []device.GPU{gpuA(), gpuB()} {
		want := []string{
			"quit", // a stale daemon is stopped before the start
			fmt.Sprintf("start visible=%s log=%s", g.UUID, filepath.Join(e.root, g.UUID, "log")),
			"set_default_active_thread_percentage 80",
			// One visible GPU: the daemon calls it device 0.
			fmt.Sprintf("set_default_device_pinned_mem_limit 0 %dM", g.MemoryMiB/2),
		}
		if diff := cmp.Diff(want, e.commands(g.UUID)); diff != "" {
			t.Errorf("daemon %s commands (-want +got):\n%s", g.UUID, diff)
		}
		if ok, reason := e.m.Healthy(g.UUID); !ok {
			t.Errorf("Healthy(%s) = false, %q", g.UUID, reason)
		}
		if grp, _ := e.m.Group(g.UUID); grp != g.UUID {
			t.Errorf("Group(%s) = %q", g.UUID, grp)
		}
	}
	excl, _ := e.modes.calls()
	if diff := cmp.Diff([]string{"GPU-aaaa", "GPU-bbbb"}, excl); diff != "" {
		t.Errorf("EXCLUSIVE_PROCESS calls (-want +got):\n%s", diff)
	}
	e.ctl.mu.Lock()
	shm := e.ctl.shmDir["GPU-aaaa"]
	e.ctl.mu.Unlock()
	if want := filepath.Join(e.root, "GPU-aaaa", "shm"); shm != want {
		t.Errorf("daemon shm dir = %q, want %q", shm, want)
	}
	if ok, _ := e.m.Healthy("GPU-zzzz"); ok {
		t.Error("Healthy of an unknown GPU = true")
	}
}

func TestStartNodeScope(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{Scope: ScopeNode})
	e.start(gpuB(), gpuA()) // unsorted: the daemon orders by host index

	want := []string{
		"quit",
		fmt.Sprintf("start visible=GPU-aaaa,GPU-bbbb log=%s", filepath.Join(e.root, "node", "log")),
		"set_default_active_thread_percentage 100",
		"set_default_device_pinned_mem_limit 0 81920M",
		"set_default_device_pinned_mem_limit 1 40960M",
	}
	if diff := cmp.Diff(want, e.commands("node")); diff != "" {
		t.Errorf("node daemon commands (-want +got):\n%s", diff)
	}
	for _, uuid := range []string{"GPU-aaaa", "GPU-bbbb"} {
		if grp, _ := e.m.Group(uuid); grp != "node" {
			t.Errorf("Group(%s) = %q, want node", uuid, grp)
		}
	}
}

func TestStartAdoptsRunningDaemon(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{})
	// A daemon left by the previous plugin process is answering.
	if err := os.MkdirAll(e.pipeDir("GPU-aaaa"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.touch("GPU-aaaa", "fakectl.alive")
	e.start(gpuA())
	want := []string{"set_default_active_thread_percentage 100", "set_default_device_pinned_mem_limit 0 81920M"}
	if diff := cmp.Diff(want, e.commands("GPU-aaaa")); diff != "" {
		t.Errorf("commands (-want +got): no restart of a running daemon expected\n%s", diff)
	}
}

func TestStartFailures(t *testing.T) {
	fake := buildFake(t)

	t.Run("no daemon starts", func(t *testing.T) {
		e := newEnv(t, fake, Config{})
		if err := os.MkdirAll(e.pipeDir("GPU-aaaa"), 0o755); err != nil {
			t.Fatal(err)
		}
		e.touch("GPU-aaaa", "fakectl.failstart")
		err := e.m.Start(e.ctx, []device.GPU{gpuA()})
		if err == nil || !strings.Contains(err.Error(), "no MPS control daemon could be started") {
			t.Fatalf("Start error = %v", err)
		}
	})

	t.Run("one daemon of two fails, then recovers", func(t *testing.T) {
		e := newEnv(t, fake, Config{})
		e.modes.fail = map[string]bool{"GPU-bbbb": true}
		if err := e.m.Start(e.ctx, []device.GPU{gpuA(), gpuB()}); err != nil {
			t.Fatalf("Start: %v", err)
		}
		got := map[string]device.HealthEvent{}
		for range 2 {
			ev := e.event()
			got[ev.UUID] = ev
		}
		if !got["GPU-aaaa"].Healthy || got["GPU-bbbb"].Healthy {
			t.Fatalf("Start events = %+v, want GPU-aaaa healthy and GPU-bbbb not", got)
		}
		if r := got["GPU-bbbb"].Reason; !strings.Contains(r, "EXCLUSIVE_PROCESS") || !strings.Contains(r, "every MPS client on GPU GPU-bbbb is affected") {
			t.Errorf("reason = %q", r)
		}
		if _, err := e.m.ContainerEdits([]device.ContainerDevice{{UUID: "GPU-bbbb", HostIndex: 1, MemLimitMiB: 1024}}); err == nil || !strings.Contains(err.Error(), "its MPS control daemon is down") {
			t.Errorf("ContainerEdits on a down GPU: err = %v", err)
		}
		e.modes.mu.Lock()
		e.modes.fail = nil
		e.modes.mu.Unlock()
		if ev := e.event(); ev.UUID != "GPU-bbbb" || !ev.Healthy {
			t.Fatalf("event = %+v, want GPU-bbbb healthy", ev)
		}
	})
}

func TestRestartAfterDeath(t *testing.T) {
	tests := []struct {
		name  string
		scope Scope
		id    string
		gpus  []device.GPU
	}{
		{name: "gpu scope", scope: ScopeGPU, id: "GPU-aaaa", gpus: []device.GPU{gpuA()}},
		{name: "node scope", scope: ScopeNode, id: "node", gpus: []device.GPU{gpuA(), gpuB()}},
	}
	fake := buildFake(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fake, Config{Scope: tt.scope})
			e.start(tt.gpus...)
			e.remove(tt.id, "fakectl.alive") // the daemon dies

			for range tt.gpus {
				ev := e.event()
				if ev.Healthy || !strings.Contains(ev.Reason, "does not answer") {
					t.Fatalf("event = %+v, want unhealthy: does not answer", ev)
				}
			}
			for range tt.gpus {
				if ev := e.event(); !ev.Healthy {
					t.Fatalf("event = %+v, want healthy after restart", ev)
				}
			}
			starts := 0
			defaults := 0
			for _, c := range e.commands(tt.id) {
				if strings.HasPrefix(c, "start ") {
					starts++
				}
				if strings.HasPrefix(c, "set_default_active_thread_percentage") {
					defaults++
				}
			}
			if starts != 2 || defaults != 2 {
				t.Errorf("starts = %d, defaults set = %d, want 2 and 2 (restart re-applies the defaults)", starts, defaults)
			}
			for _, g := range tt.gpus {
				if ok, reason := e.m.Healthy(g.UUID); !ok {
					t.Errorf("Healthy(%s) = false, %q", g.UUID, reason)
				}
			}
		})
	}
}

func TestHungDaemonIsRestarted(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{ProbeTimeout: 300 * time.Millisecond})
	e.start(gpuA())
	e.touch("GPU-aaaa", "fakectl.hang")
	ev := e.event()
	if ev.Healthy || !strings.Contains(ev.Reason, "does not answer") {
		t.Fatalf("event = %+v, want unhealthy", ev)
	}
	if ok, reason := e.m.Healthy("GPU-aaaa"); ok || !strings.Contains(reason, "every MPS client on GPU GPU-aaaa is affected") {
		t.Errorf("Healthy = %v, %q", ok, reason)
	}
	e.remove("GPU-aaaa", "fakectl.hang")
	if ev := e.event(); !ev.Healthy {
		t.Fatalf("event = %+v, want healthy", ev)
	}
}

func TestLostDefaultsAreRestored(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{MaxClientThreadPercentage: 50})
	e.start(gpuA())
	// Someone restarted the daemon behind our back: MPS's own default, 100.
	if err := os.Remove(filepath.Join(e.pipeDir("GPU-aaaa"), "state.thread")); err != nil {
		t.Fatal(err)
	}
	ev := e.event()
	if ev.Healthy || !strings.Contains(ev.Reason, "lost its defaults") {
		t.Fatalf("event = %+v, want unhealthy: lost its defaults", ev)
	}
	if ev := e.event(); !ev.Healthy {
		t.Fatalf("event = %+v, want healthy", ev)
	}
	raw, err := os.ReadFile(filepath.Join(e.pipeDir("GPU-aaaa"), "state.thread"))
	if err != nil || string(raw) != "50" {
		t.Errorf("thread default after restart = %q, %v; want 50", raw, err)
	}
}

func TestRestartBackoffRecovers(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{MaxRestartBackoff: 4 * testInterval})
	e.start(gpuA())
	e.touch("GPU-aaaa", "fakectl.failstart")
	e.remove("GPU-aaaa", "fakectl.alive")
	if ev := e.event(); ev.Healthy {
		t.Fatalf("event = %+v, want unhealthy", ev)
	}
	// Restarts keep failing; wait until a few were tried.
	eventually(t, "three failed restarts", func() bool {
		e.clk.Step(testInterval)
		n := 0
		for _, c := range e.commands("GPU-aaaa") {
			if strings.HasPrefix(c, "start ") {
				n++
			}
		}
		return n >= 4
	})
	if ok, _ := e.m.Healthy("GPU-aaaa"); ok {
		t.Fatal("healthy while restarts fail")
	}
	e.remove("GPU-aaaa", "fakectl.failstart")
	if ev := e.event(); !ev.Healthy {
		t.Fatalf("event = %+v, want healthy", ev)
	}
}

func TestNextBackoff(t *testing.T) {
	tests := []struct {
		prev, want time.Duration
	}{
		{prev: 0, want: time.Second},
		{prev: time.Second, want: 2 * time.Second},
		{prev: 2 * time.Second, want: 4 * time.Second},
		{prev: 4 * time.Second, want: 5 * time.Second},
		{prev: 5 * time.Second, want: 5 * time.Second},
	}
	for _, tt := range tests {
		if got := nextBackoff(tt.prev, time.Second, 5*time.Second); got != tt.want {
			t.Errorf("nextBackoff(%v) = %v, want %v", tt.prev, got, tt.want)
		}
	}
}

func TestSlots(t *testing.T) {
	volta := device.GPU{UUID: "GPU-v", Major: 7, MinorCC: 0}
	hopper := device.GPU{UUID: "GPU-h", Major: 9, MinorCC: 0}
	pascal := device.GPU{UUID: "GPU-p", Major: 6, MinorCC: 1}
	tests := []struct {
		name string
		cap  int64
		gpu  device.GPU
		want int64
	}{
		{name: "volta default", gpu: volta, want: 48},
		{name: "hopper default", gpu: hopper, want: 48},
		{name: "pre-volta default", gpu: pascal, want: 16},
		{name: "newer CUDA override", cap: 60, gpu: hopper, want: 60},
		{name: "lower override", cap: 8, gpu: volta, want: 8},
		{name: "override never above pre-volta cap", cap: 48, gpu: pascal, want: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(Config{ClientCap: tt.cap}, NewExecControl("x"), &fakeModes{})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Slots(tt.gpu); got != tt.want {
				t.Errorf("Slots = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestStop(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{})
	e.start(gpuA(), gpuB())
	e.m.Stop()
	e.m.Stop() // idempotent

	for _, id := range []string{"GPU-aaaa", "GPU-bbbb"} {
		cmds := e.commands(id)
		if len(cmds) == 0 || cmds[len(cmds)-1] != "quit" {
			t.Errorf("daemon %s: last command = %v, want quit", id, cmds)
		}
		if _, err := os.Stat(filepath.Join(e.pipeDir(id), "fakectl.alive")); !os.IsNotExist(err) {
			t.Errorf("daemon %s still alive after Stop", id)
		}
		if ok, _ := e.m.Healthy(id); ok {
			t.Errorf("Healthy(%s) after Stop = true", id)
		}
	}
	_, restored := e.modes.calls()
	if diff := cmp.Diff([]string{"GPU-aaaa", "GPU-bbbb"}, restored); diff != "" {
		t.Errorf("compute mode restored (-want +got):\n%s", diff)
	}
	if _, ok := <-e.m.Events(); ok {
		t.Error("Events not closed after Stop")
	}
	if _, err := e.m.ContainerEdits([]device.ContainerDevice{{UUID: "GPU-aaaa", MemLimitMiB: 1024}}); err == nil {
		t.Error("ContainerEdits after Stop: no error")
	}
	if err := e.m.Start(e.ctx, []device.GPU{gpuA()}); err == nil {
		t.Error("Start after Stop: no error")
	}
}

func TestExecControlPrivateShm(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	// A fake unshare that records its arguments and does not mount anything.
	unshare := filepath.Join(dir, "unshare")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n"
	if err := os.WriteFile(unshare, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctl := &ExecControl{Binary: "/usr/bin/nvidia-cuda-mps-control", Unshare: unshare}
	spec := DaemonSpec{ID: "GPU-aaaa", PipeDir: dir, LogDir: dir, ShmDir: "/run/gpuslice/mps/GPU-aaaa/shm", VisibleDevices: []string{"GPU-aaaa"}, MultiUser: true}
	if err := ctl.StartDaemon(t.Context(), spec); err != nil {
		t.Fatalf("StartDaemon: %v", err)
	}
	raw, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount --bind "$1" /dev/shm && shift && exec "$@"`, "sh", "/run/gpuslice/mps/GPU-aaaa/shm", "/usr/bin/nvidia-cuda-mps-control", "-d", "-multiuser-server"}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(raw)), "\n")); diff != "" {
		t.Errorf("unshare argv (-want +got):\n%s", diff)
	}
}

func TestServerFaultMarksUnhealthyWithoutRestart(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{Scope: ScopeNode, MultiUserServer: true})
	e.start(gpuA(), gpuB())
	if err := os.WriteFile(filepath.Join(e.pipeDir("node"), "fakectl.servers"), []byte("4242 FAULT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ev := e.event()
		if ev.Healthy || !strings.Contains(ev.Reason, "MPS server 4242 is in FAULT state") ||
			!strings.Contains(ev.Reason, "every MPS client of the node daemon (GPUs [GPU-aaaa GPU-bbbb]) is affected") {
			t.Fatalf("event = %+v, want unhealthy: FAULT for both GPUs", ev)
		}
	}
	if err := os.WriteFile(filepath.Join(e.pipeDir("node"), "fakectl.servers"), []byte("4242 ACTIVE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ev := e.event(); !ev.Healthy {
			t.Fatalf("event = %+v, want healthy after the server recovered", ev)
		}
	}
	starts := 0
	for _, c := range e.commands("node") {
		if strings.HasPrefix(c, "start ") {
			starts++
			if !strings.HasSuffix(c, " multiuser") {
				t.Errorf("start = %q, want -multiuser-server", c)
			}
		}
	}
	if starts != 1 {
		t.Errorf("daemon started %d times, want 1: a server fault needs no restart", starts)
	}
}

func TestStopDuringStart(t *testing.T) {
	fake := buildFake(t)
	e := newEnv(t, fake, Config{})
	done := make(chan error, 1)
	go func() { done <- e.m.Start(e.ctx, []device.GPU{gpuA(), gpuB()}) }()
	e.m.Stop() // must neither panic nor deadlock, whatever Start has reached
	// Start returns nil, or an error when Stop came first or stopped every
	// daemon's start; either is fine here.
	if err := <-done; err != nil {
		t.Logf("Start returned %v (Stop came first)", err)
	}
	for range e.m.Events() {
		// Drain until Stop closes it.
	}
}

func TestMaxGPUsPerContainer(t *testing.T) {
	tests := []struct {
		scope Scope
		want  int
	}{
		{"", 1},
		{ScopeGPU, 1},
		{ScopeNode, 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.scope), func(t *testing.T) {
			m, err := NewManager(Config{Scope: tc.scope}, nil, &fakeModes{})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.MaxGPUsPerContainer(); got != tc.want {
				t.Errorf("scope %q: MaxGPUsPerContainer %d, want %d", tc.scope, got, tc.want)
			}
		})
	}
}
