package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// spawner starts every process of a cluster from one locked OS thread.
// Pdeathsig is delivered when the thread that forked a child exits, not when
// the process does; a Go thread can exit under the runtime's feet, so the
// children are forked from a thread that is locked for the cluster's whole
// life. close makes the thread exit, which SIGKILLs anything still running.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
	done chan struct{}
}

type spawnReq struct {
	cmd  *exec.Cmd
	resp chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		// Never unlocked: the thread exits with the goroutine.
		runtime.LockOSThread()
		defer close(s.done)
		for {
			select {
			case r := <-s.reqs:
				r.resp <- r.cmd.Start()
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	resp := make(chan error, 1)
	select {
	case s.reqs <- spawnReq{cmd: cmd, resp: resp}:
		return <-resp
	case <-s.done:
		return errors.New("cluster is stopped")
	}
}

func (s *spawner) close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// process is one running component.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	exited  chan struct{} // closed once Wait returned
	err     error         // Wait's result, valid after exited
}

// startProcess starts bin with args in its own process group, with env
// added to the harness's environment and stdout and stderr appended to
// logPath.
func startProcess(sp *spawner, name, bin string, args, env []string, logPath string) (*process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s binary: %w", name, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s %s %q env %q\n", time.Now().Format(time.RFC3339Nano), bin, args, env)
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sp.start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, log: f, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError describes how the process ended, with the tail of its log.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited (%w); last log lines:\n%s", p.name, p.err, tailFile(p.logPath, 30))
}

// signal sends sig to the process group.
func (p *process) signal(sig syscall.Signal) {
	if p.running() {
		// The group id is the pid (Setpgid with Pgid 0).
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop sends SIGTERM to the process group, SIGKILL after grace, and waits
// until the process has exited; it then SIGKILLs the group once more so
// that no child of the component survives it.
func (p *process) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	if grace > 0 {
		p.signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.exited:
		case <-t.C:
		}
		t.Stop()
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// tailFile returns the last n lines of a file ("" when unreadable).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-maxTail, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
