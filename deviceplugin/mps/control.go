package mps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MPS environment variables.
const (
	EnvPipeDirectory          = "CUDA_MPS_PIPE_DIRECTORY"
	EnvLogDirectory           = "CUDA_MPS_LOG_DIRECTORY"
	EnvPinnedDeviceMemLimit   = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
	EnvActiveThreadPercentage = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
	EnvVisibleDevices         = "CUDA_VISIBLE_DEVICES"
)

// pidFileName is the file the control daemon writes in its pipe directory.
const pidFileName = "nvidia-cuda-mps-control.pid"

// DaemonSpec says which MPS control daemon a Control call is about.
type DaemonSpec struct {
	// ID is the GPU UUID in ScopeGPU, "node" in ScopeNode.
	ID string
	// PipeDir and LogDir are the daemon's CUDA_MPS_PIPE_DIRECTORY and
	// CUDA_MPS_LOG_DIRECTORY on the host.
	PipeDir, LogDir string
	// ShmDir is the host directory the daemon (and the MPS server it
	// spawns) must see as /dev/shm; empty leaves /dev/shm alone.
	ShmDir string
	// VisibleDevices are the UUIDs of the daemon's GPUs, in the order that
	// gives their daemon-side indices (CUDA_VISIBLE_DEVICES).
	VisibleDevices []string
	// MultiUser starts the daemon with -multiuser-server (v3: -m): clients
	// of every Linux user share one root MPS server (Config.MultiUserServer).
	MultiUser bool
	// Protocol is the MPS control protocol: VersionLegacy (2, the
	// interactive control pipe) or VersionV3 (3, namespaces and the module
	// verb command line). 0 means VersionLegacy.
	Protocol int
	// ConfigFile is, for VersionV3, the TOML file the daemon applies at
	// start (-a FILE).
	ConfigFile string
}

// v3 reports whether the daemon speaks MPS v3.
func (s DaemonSpec) v3() bool { return s.Protocol == VersionV3 }

// startArgs are the arguments of the control program that start the daemon:
// `-d [-multiuser-server]` for the legacy daemon, and for v3, per NVIDIA's
// MPS v3 interface, `-d -p 3 [-m] -a FILE`.
func (s DaemonSpec) startArgs() []string {
	if s.v3() {
		args := []string{"-d", "-p", "3"}
		if s.MultiUser {
			args = append(args, "-m")
		}
		return append(args, "-a", s.ConfigFile)
	}
	if s.MultiUser {
		return []string{"-d", "-multiuser-server"}
	}
	return []string{"-d"}
}

// Env is the MPS environment of the daemon and of its control clients.
func (s DaemonSpec) Env() []string {
	return []string{
		EnvPipeDirectory + "=" + s.PipeDir,
		EnvLogDirectory + "=" + s.LogDir,
		EnvVisibleDevices + "=" + strings.Join(s.VisibleDevices, ","),
	}
}

// Control runs the MPS control program for one daemon at a time. ExecControl
// runs the real one; tests use a fake executable. Implementations must be
// safe for concurrent use on different daemons.
type Control interface {
	// StartDaemon starts the control daemon in the background
	// (`nvidia-cuda-mps-control -d` with spec's environment) and returns
	// once the start command has finished.
	StartDaemon(ctx context.Context, spec DaemonSpec) error
	// Command writes one command line to the daemon's control pipe and
	// returns the daemon's answer with surrounding white space removed.
	Command(ctx context.Context, spec DaemonSpec, command string) (string, error)
	// Run runs the control program with args (MPS v3's module verb
	// commands, e.g. `namespace list --server=gpuslice`) against the
	// daemon and returns its output with surrounding white space removed.
	Run(ctx context.Context, spec DaemonSpec, args ...string) (string, error)
	// StopDaemon asks the daemon to quit and makes sure it is gone. A daemon
	// that is not running is not an error.
	StopDaemon(ctx context.Context, spec DaemonSpec) error
}

// ExecControl runs the MPS control program with os/exec. NewManager uses
// one for Config.ControlBinary when it is given no Control.
type ExecControl struct {
	// Binary is the control program, a path or a name looked up in PATH.
	Binary string
	// Unshare is util-linux unshare, used to give a daemon its own
	// /dev/shm (DaemonSpec.ShmDir). Default "unshare".
	Unshare string
}

var _ Control = (*ExecControl)(nil)

// NewExecControl returns an ExecControl for binary.
func NewExecControl(binary string) *ExecControl {
	return &ExecControl{Binary: binary, Unshare: "unshare"}
}

// waitDelay bounds how long a killed control process may hold its pipes.
const waitDelay = time.Second

// baseEnv is this process's environment without the variables that select
// an MPS daemon or GPUs, so a daemon gets exactly spec's.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CUDA_MPS_") || name == EnvVisibleDevices {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// StartDaemon implements Control.
func (c *ExecControl) StartDaemon(ctx context.Context, spec DaemonSpec) error {
	// The daemon keeps whatever it inherits as stdout; a file (not a pipe)
	// keeps Wait from waiting for the daemon itself.
	out, err := os.CreateTemp(spec.LogDir, "start-*.out")
	if err != nil {
		return fmt.Errorf("create start output file: %w", err)
	}
	defer func() {
		_ = out.Close()
		_ = os.Remove(out.Name())
	}()

	var cmd *exec.Cmd
	if spec.ShmDir != "" {
		unshare := c.Unshare
		if unshare == "" {
			unshare = "unshare"
		}
		// A private mount namespace whose /dev/shm is the daemon's shm
		// directory; the daemon and the servers it spawns stay in it.
		args := append([]string{"--mount", "--propagation", "private", "--",
			"/bin/sh", "-c", `mount --bind "$1" /dev/shm && shift && exec "$@"`, "sh", spec.ShmDir, c.Binary},
			spec.startArgs()...)
		cmd = exec.CommandContext(ctx, unshare, args...)
	} else {
		cmd = exec.CommandContext(ctx, c.Binary, spec.startArgs()...)
	}
	cmd.Env = append(baseEnv(), spec.Env()...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("start MPS control daemon %s: %w: %s", spec.ID, err, bytes.TrimSpace(msg))
	}
	return nil
}

// Command implements Control.
func (c *ExecControl) Command(ctx context.Context, spec DaemonSpec, command string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Binary)
	cmd.Env = append(baseEnv(), spec.Env()...)
	cmd.Stdin = strings.NewReader(command + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("MPS control command %q to daemon %s: %w: %s", command, spec.ID, err,
			strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Run implements Control.
func (c *ExecControl) Run(ctx context.Context, spec DaemonSpec, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	cmd.Env = append(baseEnv(), spec.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("MPS control %q to daemon %s: %w: %s", strings.Join(args, " "), spec.ID, err,
			strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// StopDaemon implements Control: quit through the pipe (v3: `-q`), and if the daemon
// does not answer, SIGKILL the process named in its pid file (only if that
// process runs the control binary).
func (c *ExecControl) StopDaemon(ctx context.Context, spec DaemonSpec) error {
	var quitErr error
	if spec.v3() {
		_, quitErr = c.Run(ctx, spec, "-q")
	} else {
		_, quitErr = c.Command(ctx, spec, "quit")
	}
	if quitErr == nil {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(spec.PipeDir, pidFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil // never started, or gone
	}
	if err != nil {
		return fmt.Errorf("stop MPS control daemon %s: %w (after quit failed: %w)", spec.ID, err, quitErr)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("stop MPS control daemon %s: bad pid file %q (after quit failed: %w)", spec.ID, raw, quitErr)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil // no such process: gone
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if filepath.Base(string(argv0)) != filepath.Base(c.Binary) {
		return nil // the pid was reused by another program
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill MPS control daemon %s (pid %d): %w (after quit failed: %w)", spec.ID, pid, err, quitErr)
	}
	return nil
}
