package mps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

const (
	testInterval = time.Second
	waitTimeout  = 20 * time.Second
	pollEvery    = 5 * time.Millisecond
)

// buildFake builds the fake nvidia-cuda-mps-control into a temporary
// directory and returns its path.
func buildFake(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nvidia-cuda-mps-control")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/fakectl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake control binary: %v\n%s", err, out)
	}
	return bin
}

// fakeModes records compute-mode changes; fail makes SetExclusiveProcess
// fail for a UUID.
type fakeModes struct {
	mu        sync.Mutex
	exclusive []string
	restored  []string
	fail      map[string]bool
}

func (f *fakeModes) SetExclusiveProcess(uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[uuid] {
		return errors.New("nvml: not supported")
	}
	f.exclusive = append(f.exclusive, uuid)
	return nil
}

func (f *fakeModes) SetDefault(uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = append(f.restored, uuid)
	return nil
}

func (f *fakeModes) calls() (exclusive, restored []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.exclusive...), append([]string(nil), f.restored...)
}

// noShmControl runs the fake through ExecControl without the private
// /dev/shm namespace (which needs root and would mount over /dev/shm), and
// remembers the shm directories it was asked for.
type noShmControl struct {
	*ExecControl
	mu     sync.Mutex
	shmDir map[string]string
}

func (c *noShmControl) StartDaemon(ctx context.Context, spec DaemonSpec) error {
	c.mu.Lock()
	c.shmDir[spec.ID] = spec.ShmDir
	c.mu.Unlock()
	spec.ShmDir = ""
	return c.ExecControl.StartDaemon(ctx, spec)
}

// env is one manager under test.
type env struct {
	t     *testing.T
	m     *Manager
	clk   *testingclock.FakeClock
	modes *fakeModes
	ctl   *noShmControl
	root  string
	ctx   context.Context
}

// gpuA and gpuB are the GPUs of the tests: an H100-like and an A100-like.
func gpuA() device.GPU {
	return device.GPU{Index: 0, UUID: "GPU-aaaa", MemoryMiB: 81920, Major: 9, MinorCC: 0}
}
func gpuB() device.GPU {
	return device.GPU{Index: 1, UUID: "GPU-bbbb", MemoryMiB: 40960, Major: 8, MinorCC: 0}
}

// newEnv builds a Manager over the fake control binary. cfg's Root,
// ControlBinary and Clock are filled in; fake is from buildFake.
func newEnv(t *testing.T, fake string, cfg Config) *env {
	t.Helper()
	return newEnvAt(t, fake, cfg, t.TempDir())
}

// newEnvAt is newEnv with the daemons under root (a second Manager over
// the daemons of a first one: a plugin restart).
func newEnvAt(t *testing.T, fake string, cfg Config, root string) *env {
	t.Helper()
	e := &env{
		t:     t,
		clk:   testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		modes: &fakeModes{},
		ctl:   &noShmControl{ExecControl: NewExecControl(fake), shmDir: map[string]string{}},
		root:  root,
	}
	cfg.Root = e.root
	cfg.ControlBinary = fake
	cfg.Clock = e.clk
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = testInterval
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 5 * time.Second
	}
	m, err := NewManager(cfg, e.ctl, e.modes)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	e.m = m
	_, ctx := ktesting.NewTestContext(t)
	e.ctx = ctx
	t.Cleanup(m.Stop)
	return e
}

// start starts the manager and drains the Start events.
func (e *env) start(gpus ...device.GPU) {
	e.t.Helper()
	if err := e.m.Start(e.ctx, gpus); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	for range gpus {
		ev := e.event()
		if !ev.Healthy {
			e.t.Fatalf("Start event: %+v, want healthy", ev)
		}
	}
}

// pipeDir is the host pipe directory of daemon id.
func (e *env) pipeDir(id string) string { return filepath.Join(e.root, id, "pipe") }

// commands returns what the fake recorded for daemon id, without the
// health probes.
func (e *env) commands(id string) []string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.pipeDir(id), "commands.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("read commands: %v", err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if l != "get_default_active_thread_percentage" && l != "get_server_list" && !strings.HasPrefix(l, "get_server_status") {
			out = append(out, l)
		}
	}
	return out
}

// touch creates a knob file of the fake in daemon id's pipe directory.
func (e *env) touch(id, name string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.pipeDir(id), name), []byte("100"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// remove removes a file of the fake; removing fakectl.alive kills the daemon.
func (e *env) remove(id, name string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.pipeDir(id), name)); err != nil {
		e.t.Fatal(err)
	}
}

// event returns the next health event, advancing the fake clock by one
// health interval at every poll so that probes and restarts happen.
func (e *env) event() device.HealthEvent {
	e.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		select {
		case ev, ok := <-e.m.Events():
			if !ok {
				e.t.Fatal("events closed")
			}
			return ev
		case <-poll.C:
			e.clk.Step(testInterval)
		case <-deadline.C:
			e.t.Fatal("no health event before the deadline")
		}
	}
}

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// errorMatches reports whether the test should go on checking a result:
// with want "" err must be nil; otherwise err must contain want (and the
// result is not checked).
func errorMatches(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error = %v, want %q", err, want)
	}
	return want == ""
}
