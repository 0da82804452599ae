package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// devDir is a device's real directory; the fake puts every device directly
// under one host bridge.
func devDir(bdf string) string { return "devices/pci0000:00/" + bdf }

// onHost runs op on the host path of the sysfs path p, and wraps its error.
func (f *Fake) onHost(p string, op func(hp string) error) error {
	hp, err := f.root.hostPath(p)
	if err != nil {
		return err
	}
	if err := op(hp); err != nil {
		return fmt.Errorf("fake sysfs: %w", err)
	}
	return nil
}

func (f *Fake) mkdir(p string) error {
	return f.onHost(p, func(hp string) error { return os.MkdirAll(hp, 0o755) })
}

// attr writes an attribute as the kernel shows it: content and a newline.
func (f *Fake) attr(p, content string) error {
	if content != "" && content[len(content)-1] != '\n' {
		content += "\n"
	}
	return f.onHost(p, func(hp string) error { return os.WriteFile(hp, []byte(content), 0o644) })
}

func (f *Fake) link(p, target string) error {
	return f.onHost(p, func(hp string) error { return os.Symlink(filepath.FromSlash(target), hp) })
}

func (f *Fake) removeAll(p string) error {
	return f.onHost(p, func(hp string) error {
		if err := os.RemoveAll(hp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

func (f *Fake) addDriver(drv string) error {
	d := "bus/pci/drivers/" + drv
	if ok, err := f.root.Exists(d); err != nil || ok {
		return err
	}
	if err := f.mkdir(d); err != nil {
		return err
	}
	for _, name := range []string{"bind", "unbind", "new_id"} {
		if err := f.attr(d+"/"+name, ""); err != nil {
			return err
		}
	}
	return nil
}

// renderDriver makes the device's driver link match its bound driver.
func (f *Fake) renderDriver(bdf string) error {
	dev := f.devs[bdf]
	d := devDir(bdf)
	if err := f.removeAll(d + "/driver"); err != nil {
		return err
	}
	if dev.spec.Driver == "" {
		return nil
	}
	return f.link(d+"/driver", "../../../bus/pci/drivers/"+dev.spec.Driver)
}

func (f *Fake) sortedMdevs() []string { return slices.Sorted(maps.Keys(f.mdevs)) }
