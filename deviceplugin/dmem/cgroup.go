package dmem

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultRoot is where the cgroup v2 hierarchy is mounted.
const DefaultRoot = "/sys/fs/cgroup"

// Container names one running container of a pod: enough to find its cgroup.
type Container struct {
	// PodUID is the pod's UID.
	PodUID string
	// QOSClass is the pod's QoS class (pod status); "" tries all three.
	QOSClass corev1.PodQOSClass
	// ContainerID is the container's ID as its status gives it:
	// "<runtime>://<id>" ("containerd://0123...", "cri-o://...").
	ContainerID string
}

// maxContainerID bounds the ID part of a container ID (a path element).
const maxContainerID = 128

// splitContainerID splits "<runtime>://<id>", refusing an ID that is not a
// plain path element of letters and digits.
func splitContainerID(cid string) (runtime, id string, err error) {
	runtime, id, ok := strings.Cut(cid, "://")
	if !ok || runtime == "" || id == "" || len(id) > maxContainerID ||
		strings.ContainsFunc(id, func(r rune) bool { return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') }) {
		return "", "", fmt.Errorf("container ID %q: want <runtime>://<letters and digits>", cid)
	}
	return runtime, id, nil
}

// qosLevels are the QoS path levels of class under kubelet's cgroup root:
// a Guaranteed pod sits directly in it, the others one level below.
func qosLevels(class corev1.PodQOSClass) []string {
	switch class {
	case corev1.PodQOSGuaranteed:
		return []string{""}
	case corev1.PodQOSBurstable:
		return []string{"burstable"}
	case corev1.PodQOSBestEffort:
		return []string{"besteffort"}
	}
	return []string{"", "burstable", "besteffort"}
}

// scopePrefixes are the systemd scope prefixes runtime names its
// containers' scopes with.
func scopePrefixes(runtime string) []string {
	switch runtime {
	case "containerd":
		return []string{"cri-containerd-"}
	case "cri-o":
		return []string{"crio-"}
	case "docker":
		return []string{"docker-"}
	}
	return []string{"cri-containerd-", "crio-", "docker-"}
}

// candidateDirs are the cgroup directories, relative to the root, where c
// may be: under the systemd driver
// kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid, '-' as
// '_'>.slice/<prefix><id>.scope (a Guaranteed pod:
// kubepods.slice/kubepods-pod<uid>.slice/...), under the cgroupfs driver
// kubepods/<qos>/pod<uid>/<id>.
func candidateDirs(c Container) ([]string, error) {
	runtime, id, err := splitContainerID(c.ContainerID)
	if err != nil {
		return nil, err
	}
	if c.PodUID == "" || strings.ContainsAny(c.PodUID, "/._") || strings.ContainsFunc(c.PodUID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, fmt.Errorf("pod UID %q: not usable in a cgroup path", c.PodUID)
	}
	uid := strings.ReplaceAll(c.PodUID, "-", "_")
	var out []string
	for _, qos := range qosLevels(c.QOSClass) {
		slice, pod := "kubepods.slice", "kubepods-pod"+uid+".slice"
		if qos != "" {
			slice = filepath.Join(slice, "kubepods-"+qos+".slice")
			pod = "kubepods-" + qos + "-pod" + uid + ".slice"
		}
		for _, prefix := range scopePrefixes(runtime) {
			out = append(out, filepath.Join(slice, pod, prefix+id+".scope"))
		}
		out = append(out, filepath.Join("kubepods", qos, "pod"+c.PodUID, id))
	}
	return out, nil
}

// ErrNoCgroup is wrapped by ContainerDir when the container has no cgroup
// directory (yet, or any more).
var ErrNoCgroup = errors.New("no cgroup directory")

// ContainerDir returns the absolute cgroup directory of c under root: the
// first of its candidate directories that exists.
func ContainerDir(root string, c Container) (string, error) {
	dirs, err := candidateDirs(c)
	if err != nil {
		return "", err
	}
	for _, d := range dirs {
		dir := filepath.Join(root, d)
		st, err := os.Stat(dir)
		switch {
		case err == nil && st.IsDir():
			return dir, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("cgroup of container %s: %w", c.ContainerID, err)
		}
	}
	return "", fmt.Errorf("container %s of pod %s: %w under %s (systemd or cgroupfs layout)", c.ContainerID, c.PodUID, ErrNoCgroup, root)
}
