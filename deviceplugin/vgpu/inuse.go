package vgpu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ProcInUse is an InUseChecker that looks for processes holding a GPU's
// device node open, the way lsof would: it finds the GPU's minor number in
// <proc>/driver/nvidia/gpus/<bdf>/information ("Device Minor: N") and scans
// every <proc>/<pid>/fd for a link to /dev/nvidia<N>. A device the nvidia
// driver does not know (no information file: another driver, or none) has
// no such node and is reported unused. It needs to run as root to see other
// users' file descriptors.
type ProcInUse struct {
	// ProcRoot is procfs's mount point, "/proc" on the host.
	ProcRoot string
}

var minorRE = regexp.MustCompile(`(?m)^Device Minor:\s*([0-9]+)\s*$`)

// InUse implements InUseChecker.
func (p ProcInUse) InUse(ctx context.Context, bdf string) (bool, string, error) {
	if err := checkBDF(bdf); err != nil {
		return false, "", err
	}
	info, err := os.ReadFile(filepath.Join(p.ProcRoot, "driver", "nvidia", "gpus", bdf, "information"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("in-use check of %s: %w", bdf, err)
	}
	m := minorRE.FindSubmatch(info)
	if m == nil {
		return false, "", fmt.Errorf("in-use check of %s: no \"Device Minor:\" line in the driver's information", bdf)
	}
	node := "/dev/nvidia" + string(m[1])
	pids, err := os.ReadDir(p.ProcRoot)
	if err != nil {
		return false, "", fmt.Errorf("in-use check of %s: %w", bdf, err)
	}
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return false, "", err
		}
		if !isDigits(pid.Name()) {
			continue
		}
		fdDir := filepath.Join(p.ProcRoot, pid.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the process exited
		}
		if err != nil {
			return false, "", fmt.Errorf("in-use check of %s: %w", bdf, err)
		}
		for _, fd := range fds {
			t, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err == nil && t == node {
				comm, _ := os.ReadFile(filepath.Join(p.ProcRoot, pid.Name(), "comm"))
				return true, fmt.Sprintf("pid %s (%s) holding %s", pid.Name(), strings.TrimSpace(string(comm)), node), nil
			}
		}
	}
	return false, "", nil
}
