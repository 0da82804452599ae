package vgpu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProcInUse(t *testing.T) {
	proc := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(proc, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(proc, p), []byte(content), 0o644))
	}
	link := func(p, target string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(proc, p)), 0o755))
		must(t, os.Symlink(target, filepath.Join(proc, p)))
	}
	write("driver/nvidia/gpus/"+spareGPU+"/information", "Model: \t\t NVIDIA A10\nIRQ:   \t\t 150\nDevice Minor: \t 3\n")
	write("driver/nvidia/gpus/"+mdevGPU+"/information", "Model: \t\t Tesla T4\nDevice Minor: \t 0\n")
	write("driver/nvidia/gpus/"+sriovGPU+"/information", "Model: garbage\n")
	write("100/comm", "python3\n")
	link("100/fd/0", "/dev/null")
	link("100/fd/7", "/dev/nvidiactl")
	link("100/fd/8", "/dev/nvidia3")
	link("200/fd/3", "/dev/nvidia30")
	write("self/comm", "not a pid\n")

	chk := ProcInUse{ProcRoot: proc}
	ctx := context.Background()
	if busy, by, err := chk.InUse(ctx, spareGPU); err != nil || !busy || by != "pid 100 (python3) holding /dev/nvidia3" {
		t.Errorf("InUse(held GPU) = %v, %q, %v", busy, by, err)
	}
	if busy, _, err := chk.InUse(ctx, mdevGPU); err != nil || busy {
		t.Errorf("InUse(unused GPU) = %v, %v; want false (nvidiactl and nvidia30 are not it)", busy, err)
	}
	if busy, _, err := chk.InUse(ctx, ptGPU); err != nil || busy {
		t.Errorf("InUse(GPU not on nvidia) = %v, %v; want false", busy, err)
	}
	if _, _, err := chk.InUse(ctx, sriovGPU); err == nil || !strings.Contains(err.Error(), "Device Minor") {
		t.Errorf("InUse(malformed information) = %v, want an error", err)
	}
}
