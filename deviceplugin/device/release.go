package device

import (
	"context"

	"github.com/gpuslice/gpuslice/api"
)

// ContainerRef names one container of a pod.
type ContainerRef struct {
	// PodUID is the pod's UID.
	PodUID string
	// Container is the container's name (init containers included).
	Container string
}

// PodReleaser is implemented by an Isolator that creates something of its
// own for each container in Allocate (MPS v3: a namespace per container)
// and frees it once the container's pod no longer holds devices. The plugin
// then asks ContainerEditsFor, naming the container, instead of
// ContainerEdits, and after every reconcile with kubelet's pod-resources
// calls ReleasePods with the UIDs of the pods that still hold devices.
type PodReleaser interface {
	// ContainerEditsFor is ContainerEdits for container c.
	ContainerEditsFor(c ContainerRef, devs []ContainerDevice) (*ContainerEdits, error)
	// ReleasePods frees what the Isolator holds for pods not in live. An
	// implementation must tolerate a container that kubelet has not listed
	// yet (its Allocate has only just returned).
	ReleasePods(ctx context.Context, live map[string]bool)
}

// EnforcementReporter is implemented by an Isolator that enforces more (or
// less) than api.DefaultEnforcement of its mode; the plugin publishes its
// Enforcement for the GPUs of the Isolator's mode.
type EnforcementReporter interface {
	Enforcement() api.Enforcement
}

// RunningContainer is a container of this node that holds devices and that
// its runtime has started, as its pod's status says.
type RunningContainer struct {
	ContainerRef
	// QOSClass is the pod's QoS class (pod status; "" when not set yet).
	QOSClass string
	// ContainerID is the status's "<runtime>://<id>".
	ContainerID string
}

// ContainerLimiter is implemented by an Isolator that puts limits on a
// container once its runtime has started it (MPS v3: the hard memory limit
// of its cgroup). After every reconcile the plugin calls LimitContainers
// with the node's running containers that hold devices; a container
// started since is in a later call. Failures are the implementation's to
// log and count: nothing is returned.
type ContainerLimiter interface {
	LimitContainers(ctx context.Context, running []RunningContainer)
}
