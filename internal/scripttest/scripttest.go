// Package scripttest runs the shell scripts under hack/ from Go tests.
package scripttest

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

// Bash runs bash with args (the script first) in the test process's
// environment plus env, and returns its combined output and exit code. It
// skips the test where there is no bash and fails it where bash could not
// be run at all; a script that exits non-zero is no failure here.
func Bash(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	cmd := exec.Command(bash, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
