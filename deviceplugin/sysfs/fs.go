package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// FS is read and write access to a sysfs tree. Every path is slash-separated
// and relative to the tree's root; a path that is absolute or climbs out of
// the root with ".." is refused.
type FS interface {
	// ReadFile returns an attribute's content.
	ReadFile(p string) ([]byte, error)
	// WriteFile writes data to an existing attribute in one write, as the
	// kernel's control files expect; it never creates a file.
	WriteFile(p string, data []byte) error
	// ReadDir returns the names in a directory, sorted.
	ReadDir(p string) ([]string, error)
	// Readlink returns a symbolic link's target as stored.
	Readlink(p string) (string, error)
	// Exists reports whether p exists, following links (a dangling link
	// does not exist).
	Exists(p string) (bool, error)
}

// Root is FS over a directory of the host.
type Root struct {
	dir string
}

// NewRoot returns the FS rooted at dir, which must be an absolute path to a
// directory (normally "/sys").
func NewRoot(dir string) (*Root, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("sysfs root %q is not an absolute path", dir)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sysfs root: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("sysfs root %q is not a directory", dir)
	}
	return &Root{dir: filepath.Clean(dir)}, nil
}

// Dir returns the root directory.
func (r *Root) Dir() string { return r.dir }

// hostPath maps a root-relative path to the host path, refusing paths that
// would leave the root.
func (r *Root) hostPath(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") || !filepath.IsLocal(filepath.FromSlash(p)) {
		return "", fmt.Errorf("sysfs path %q is not a path inside the root", p)
	}
	return filepath.Join(r.dir, filepath.FromSlash(path.Clean(p))), nil
}

// ReadFile implements FS.
func (r *Root) ReadFile(p string) ([]byte, error) {
	return onHostPath(r, p, "read", os.ReadFile)
}

// WriteFile implements FS.
func (r *Root) WriteFile(p string, data []byte) error {
	hp, err := r.hostPath(p)
	if err != nil {
		return err
	}
	// O_TRUNC is what a shell redirection uses; sysfs ignores it, and a
	// regular file (a test tree) then holds exactly the value written.
	f, err := os.OpenFile(hp, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, unwrapPathError(err))
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write %q to %s: %w", strings.TrimSpace(string(data)), p, unwrapPathError(err))
	}
	return nil
}

// ReadDir implements FS.
func (r *Root) ReadDir(p string) ([]string, error) {
	return onHostPath(r, p, "list", func(hp string) ([]string, error) {
		ents, err := os.ReadDir(hp)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		slices.Sort(names)
		return names, nil
	})
}

// Readlink implements FS.
func (r *Root) Readlink(p string) (string, error) {
	return onHostPath(r, p, "read link", func(hp string) (string, error) {
		t, err := os.Readlink(hp)
		return filepath.ToSlash(t), err
	})
}

// onHostPath runs op on the host path of p; its error names p, not the
// host path.
func onHostPath[T any](r *Root, p, verb string, op func(hp string) (T, error)) (T, error) {
	var zero T
	hp, err := r.hostPath(p)
	if err != nil {
		return zero, err
	}
	v, err := op(hp)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", verb, p, unwrapPathError(err))
	}
	return v, nil
}

// Exists implements FS.
func (r *Root) Exists(p string) (bool, error) {
	hp, err := r.hostPath(p)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(hp)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", p, unwrapPathError(err))
	}
}

// unwrapPathError drops os.PathError's host path (the caller names the
// root-relative path instead) and keeps the cause, so errors.Is still works.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ReadString returns an attribute's content without surrounding white space.
func ReadString(f FS, p string) (string, error) {
	b, err := f.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// LinkBase returns the last element of the link p's target; ok is false when
// p does not exist.
func LinkBase(f FS, p string) (base string, ok bool, err error) {
	t, err := f.Readlink(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	t = strings.TrimRight(t, "/")
	if t == "" {
		return "", false, fmt.Errorf("link %s has an empty target", p)
	}
	return path.Base(t), true, nil
}

// Join joins path elements with "/". Each element must be a single, plain
// name (no "/", not "." or ".."): names read from sysfs or from a config are
// checked here before they become paths.
func Join(elem ...string) (string, error) {
	for _, e := range elem {
		if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/\x00") {
			return "", fmt.Errorf("sysfs path element %q is not a plain name", e)
		}
	}
	return strings.Join(elem, "/"), nil
}
