package mps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// Names of the MPS v3 objects gpuslice manages. NVIDIA's "MPS v3 Interface"
// allows only lowercase letters, digits and underscores in server and
// namespace names, at most 64 characters.
const (
	// v3ServerName is the one MPS v3 server each daemon runs.
	v3ServerName = "gpuslice"
	// namespacePrefix marks the namespaces gpuslice manages; others (the
	// server's "default") are left alone.
	namespacePrefix = "gs_"
	// maxNamespaceName is NVIDIA's bound on a namespace name.
	maxNamespaceName = 64
	// podKeyLen is the length of a pod key: a UUID's 32 hex digits.
	podKeyLen = 32
	// containerKeyLen is how many hex digits of the SHA-256 of the
	// container name a namespace name keeps.
	containerKeyLen = 16
)

// PodKey is the form of a pod UID that a namespace name holds: its hex
// digits, lower case, without the dashes. Kubernetes pod UIDs are UUIDs
// (static pods: a 32-digit hash), so the key has 32 digits; ok is false for
// any other UID.
func PodKey(uid string) (string, bool) {
	key := strings.ToLower(strings.ReplaceAll(uid, "-", ""))
	return key, len(key) == podKeyLen && isHex(key) && validUUIDShape(uid)
}

// validUUIDShape accepts the UID as a bare 32-digit key or in the dashed
// 8-4-4-4-12 form, nothing else (so two UIDs cannot share a key).
func validUUIDShape(uid string) bool {
	if len(uid) == podKeyLen {
		return true
	}
	if len(uid) != 36 {
		return false
	}
	for _, i := range []int{8, 13, 18, 23} {
		if uid[i] != '-' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return (r < '0' || r > '9') && (r < 'a' || r > 'f') })
}

// NamespaceName is the name of container c's namespace:
// "gs_<pod key>_<first 16 hex digits of the SHA-256 of the container
// name>", 52 characters. The pod is read back from the name after a plugin
// restart (namespacePod); the container is found again by computing the
// name (a container is never read back from it).
func NamespaceName(c device.ContainerRef) (string, error) {
	key, ok := PodKey(c.PodUID)
	if !ok {
		return "", fmt.Errorf("MPS v3 namespace of pod %q: the pod UID is not a UUID", c.PodUID)
	}
	if c.Container == "" {
		return "", fmt.Errorf("MPS v3 namespace of pod %q: empty container name", c.PodUID)
	}
	sum := sha256.Sum256([]byte(c.Container))
	return namespacePrefix + key + "_" + hex.EncodeToString(sum[:])[:containerKeyLen], nil
}

// namespacePod returns the pod key of a gpuslice namespace name, and false
// for any name NamespaceName cannot produce (another program's namespace,
// or a name a daemon reported that could not be a path element or a TOML
// key: it is never adopted, written or released).
func namespacePod(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, namespacePrefix)
	if !ok || len(name) > maxNamespaceName {
		return "", false
	}
	key, ctr, ok := strings.Cut(rest, "_")
	return key, ok && len(key) == podKeyLen && isHex(key) && len(ctr) == containerKeyLen && isHex(ctr)
}

// NamespaceDir is the host directory of namespace name on the daemon whose
// pipe directory is pipeDir: the directory holding its control socket
// (NVIDIA's "MPS v3 Namespaces": <pipe>/<server>/<namespace>/control).
func NamespaceDir(pipeDir, name string) string {
	return filepath.Join(pipeDir, v3ServerName, name)
}
