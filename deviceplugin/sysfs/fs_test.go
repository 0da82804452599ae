package sysfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewRootRejectsRelativeAndMissing(t *testing.T) {
	for _, dir := range []string{"sys", filepath.Join(t.TempDir(), "missing")} {
		if _, err := NewRoot(dir); err == nil {
			t.Errorf("NewRoot(%q) = nil error, want one", dir)
		}
	}
}

func TestRootRefusesPathsOutsideTheRoot(t *testing.T) {
	r, err := NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "/etc/passwd", "../x", "bus/../../x"} {
		if _, err := r.ReadFile(p); err == nil {
			t.Errorf("ReadFile(%q) = nil error, want one", p)
		}
		if err := r.WriteFile(p, []byte("1")); err == nil {
			t.Errorf("WriteFile(%q) = nil error, want one", p)
		}
	}
}

func TestRootReadWriteListLink(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "attr"), []byte(" 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../x/y/target", filepath.Join(dir, "a", "lnk")); err != nil {
		t.Fatal(err)
	}
	r, err := NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ReadString(r, "a/attr"); err != nil || s != "42" {
		t.Errorf("ReadString = %q, %v; want 42", s, err)
	}
	if err := r.WriteFile("a/attr", []byte("7\n")); err != nil {
		t.Fatal(err)
	}
	if s, _ := ReadString(r, "a/attr"); s != "7" {
		t.Errorf("after write: %q, want 7", s)
	}
	if err := r.WriteFile("a/new", []byte("1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile of a missing attribute: %v, want not-exist (sysfs never creates files)", err)
	}
	names, err := r.ReadDir("a")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"attr", "b", "lnk"}, names); d != "" {
		t.Errorf("ReadDir (-want +got):\n%s", d)
	}
	if b, ok, err := LinkBase(r, "a/lnk"); err != nil || !ok || b != "target" {
		t.Errorf("LinkBase = %q, %v, %v; want target", b, ok, err)
	}
	if _, ok, err := LinkBase(r, "a/none"); err != nil || ok {
		t.Errorf("LinkBase of a missing link = %v, %v; want not ok, no error", ok, err)
	}
	if ok, err := r.Exists("a/lnk"); err != nil || ok {
		t.Errorf("Exists(dangling link) = %v, %v; want false", ok, err)
	}
	if ok, err := r.Exists("a/b"); err != nil || !ok {
		t.Errorf("Exists(dir) = %v, %v; want true", ok, err)
	}
}

func TestJoinRefusesNonNames(t *testing.T) {
	for _, e := range []string{"", ".", "..", "a/b", "a\x00"} {
		if _, err := Join("bus", e); err == nil {
			t.Errorf("Join(bus, %q) = nil error, want one", e)
		}
	}
	if p, err := Join("bus", "pci", "0000:41:00.0"); err != nil || p != "bus/pci/0000:41:00.0" {
		t.Errorf("Join = %q, %v", p, err)
	}
}
