package sysfs

import (
	"fmt"
	"path"
	"slices"
)

// SetFile writes content to p, creating the file (and its directory) if
// needed: a test's way to put malformed content where the kernel would
// never. Later simulated writes re-render only the attributes they touch.
func (f *Fake) SetFile(p, content string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mkdir(path.Dir(p)); err != nil {
		return err
	}
	return f.attr(p, content)
}

// SetLink makes p a link to target (replacing what was there).
func (f *Fake) SetLink(p, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.removeAll(p); err != nil {
		return err
	}
	return f.link(p, target)
}

// RemoveFile removes p (a file, link or directory tree) behind everyone's
// back, without the simulation's bookkeeping.
func (f *Fake) RemoveFile(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removeAll(p)
}

// FailRead makes reads of p fail with err; a nil err clears it.
func (f *Fake) FailRead(p string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	setOrClear(f.readErrs, p, err)
}

// FailWrite makes writes to p fail with err; a nil err clears it.
func (f *Fake) FailWrite(p string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	setOrClear(f.writeErrs, p, err)
}

// Writes returns every write attempted so far, in order.
func (f *Fake) Writes() []Write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

func setOrClear(m map[string]error, p string, err error) {
	if err == nil {
		delete(m, p)
		return
	}
	m[p] = err
}

// ReadFile implements FS.
func (f *Fake) ReadFile(p string) ([]byte, error) {
	if err := f.readErr(p); err != nil {
		return nil, err
	}
	return f.root.ReadFile(p)
}

// ReadDir implements FS.
func (f *Fake) ReadDir(p string) ([]string, error) {
	if err := f.readErr(p); err != nil {
		return nil, err
	}
	return f.root.ReadDir(p)
}

// Readlink implements FS.
func (f *Fake) Readlink(p string) (string, error) {
	if err := f.readErr(p); err != nil {
		return "", err
	}
	return f.root.Readlink(p)
}

// Exists implements FS.
func (f *Fake) Exists(p string) (bool, error) {
	if err := f.readErr(p); err != nil {
		return false, err
	}
	return f.root.Exists(p)
}

func (f *Fake) readErr(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.readErrs[p]; ok {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}
