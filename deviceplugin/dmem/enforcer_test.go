package dmem

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

const (
	busA    = "0000:1b:00.0"
	busB    = "0000:43:00.0"
	regionA = "nvidia/00000000:1b:00.0/vidmem"
	regionB = "nvidia/00000000:43:00.0/vidmem"
)

// fakeTree is a cgroup root with dmem.capacity and one container's cgroup
// whose dmem.max holds max.
func fakeTree(t *testing.T) (root, dir string, c Container) {
	t.Helper()
	root = t.TempDir()
	rel := "kubepods/pod" + testUID + "/" + testID
	mkdirs(t, root, rel)
	dir = filepath.Join(root, rel)
	write(t, filepath.Join(root, CapacityFile), regionA+" 85899345920\n"+regionB+" 85899345920\n")
	write(t, filepath.Join(dir, MaxFile), regionA+" max\n"+regionB+" max\n")
	return root, dir, Container{PodUID: testUID, QOSClass: corev1.PodQOSGuaranteed, ContainerID: "containerd://" + testID}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kernelMax stands in for the kernel's dmem.max: a write of one region's
// line replaces that region's value (the real file is not a plain file).
type kernelMax struct {
	FileLimiter
	writes []string
}

func (k *kernelMax) SetHardLimit(ctx context.Context, dir string, g GPU, bytes uint64) error {
	name, err := k.region(g)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, MaxFile))
	if err != nil {
		return err
	}
	regions, err := ParseMax(b)
	if err != nil {
		return err
	}
	for i := range regions {
		if regions[i].Name == name {
			regions[i] = Region{Name: name, Bytes: bytes}
		}
	}
	k.writes = append(k.writes, fmt.Sprintf("%s %d", name, bytes))
	return os.WriteFile(filepath.Join(dir, MaxFile), []byte(Format(regions)), 0o644)
}

// dropWrites accepts every write and keeps none.
type dropWrites struct{ FileLimiter }

func (dropWrites) SetHardLimit(context.Context, string, GPU, uint64) error { return nil }

func TestFileLimiter(t *testing.T) {
	root, dir, _ := fakeTree(t)
	l := FileLimiter{Root: root}
	ctx := context.Background()
	if _, ok, err := l.HardLimit(ctx, dir, GPU{UUID: "GPU-a", PCIBusID: busA}); err != nil || ok {
		t.Fatalf("HardLimit of an unlimited region = ok %v, %v; want unlimited", ok, err)
	}
	// The file takes one "<region> <bytes>" line per write.
	if err := l.SetHardLimit(ctx, dir, GPU{UUID: "GPU-a", PCIBusID: busA}, 4<<30); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, MaxFile))
	if diff := cmp.Diff(regionA+" 4294967296\n", string(b)); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if got, ok, err := l.HardLimit(ctx, dir, GPU{UUID: "GPU-a", PCIBusID: busA}); err != nil || !ok || got != 4<<30 {
		t.Errorf("HardLimit = %d, %v, %v; want 4 GiB", got, ok, err)
	}
	if err := l.SetHardLimit(ctx, dir, GPU{UUID: "GPU-x", PCIBusID: "0000:99:00.0"}, 1); err == nil || !strings.Contains(err.Error(), "no dmem region") {
		t.Errorf("GPU without a region: error %v", err)
	}
	if err := l.SetHardLimit(ctx, filepath.Join(root, "gone"), GPU{UUID: "GPU-a", PCIBusID: busA}, 1); err == nil {
		t.Error("cgroup without dmem.max: no error")
	}
}

func TestEnforcerApply(t *testing.T) {
	root, dir, c := fakeTree(t)
	k := &kernelMax{FileLimiter: FileLimiter{Root: root}}
	e := &Enforcer{Root: root, Limiter: k}
	ctx := context.Background()
	limits := []GPULimit{{GPU: GPU{UUID: "GPU-a", PCIBusID: busA}, Bytes: 4 << 30}, {GPU: GPU{UUID: "GPU-b", PCIBusID: busB}, Bytes: 2 << 30}}

	changed, err := e.Apply(ctx, c, limits)
	if err != nil || !changed {
		t.Fatalf("first Apply = %v, %v; want changed", changed, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, MaxFile))
	if diff := cmp.Diff(regionA+" 4294967296\n"+regionB+" 2147483648\n", string(b)); diff != "" {
		t.Errorf("dmem.max (-want +got):\n%s", diff)
	}
	// Once in place, nothing is written again.
	if changed, err := e.Apply(ctx, c, limits); err != nil || changed {
		t.Errorf("second Apply = %v, %v; want unchanged", changed, err)
	}
	// Someone raised one: it is set again.
	write(t, filepath.Join(dir, MaxFile), regionA+" max\n"+regionB+" 2147483648\n")
	if changed, err := e.Apply(ctx, c, limits); err != nil || !changed {
		t.Errorf("Apply after a change = %v, %v; want changed", changed, err)
	}
	want := []string{regionA + " 4294967296", regionB + " 2147483648", regionA + " 4294967296"}
	if diff := cmp.Diff(want, k.writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}

	// A write the kernel does not keep is reported by the read-back.
	write(t, filepath.Join(dir, MaxFile), regionA+" max\n"+regionB+" max\n")
	lost := &Enforcer{Root: root, Limiter: dropWrites{FileLimiter{Root: root}}}
	if _, err := lost.Apply(ctx, c, limits); err == nil || !strings.Contains(err.Error(), "reads back") {
		t.Errorf("Apply with a lost write: error %v, want a read-back mismatch", err)
	}
	// A container without a cgroup yet.
	c.ContainerID = "containerd://other"
	if _, err := e.Apply(ctx, c, limits); err == nil || !strings.Contains(err.Error(), "no cgroup directory") {
		t.Errorf("Apply without a cgroup: error %v", err)
	}
}
