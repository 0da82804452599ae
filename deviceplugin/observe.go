package deviceplugin

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/metrics"
)

// Event reasons the device plugin records (events.k8s.io, reporting
// controller gpuslice-device-plugin).
const (
	// EventAllocateRefused: on the pod an Allocate was refused for (a pod
	// that bypassed the extender, a request that does not match what kubelet
	// offered), or on the node when the call could not be attributed.
	EventAllocateRefused = "GPUAllocateRefused"
	// EventPreStartRefused: on the pod whose container PreStart refused to
	// start (wrong devices or environment).
	EventPreStartRefused = "GPUPreStartRefused"
	// EventGPUUnhealthy and EventGPUHealthy: on the node, when a GPU
	// becomes unhealthy (it takes no new pods) and when it recovers.
	EventGPUUnhealthy = "GPUUnhealthy"
	EventGPUHealthy   = "GPUHealthy"
	// EventIsolationProblem: on the node, for each thing the isolation
	// mode's start could not do (a vGPU instance it could not create, a
	// GPU it left as it was).
	EventIsolationProblem = "GPUIsolationProblem"
)

// observers are the broker's and the plugin's metrics and event recorder;
// the zero value records nothing.
type observers struct {
	metrics *metrics.Metrics
	events  events.EventRecorder
	node    string
}

// nodeRef names the node in events (kubelet's convention: UID = name).
func nodeRef(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}}
}

// refused records a refused kubelet call as an event: on the pod it was
// for when known, else on the node.
func (b *Broker) refused(ctx context.Context, reason, action string, err error) {
	if b.obs.events == nil {
		return
	}
	var r *refusal
	if errors.As(err, &r) && r.pod != nil {
		b.obs.events.Eventf(r.pod, nil, corev1.EventTypeWarning, reason, action, "%s", err.Error())
		return
	}
	b.obs.events.Eventf(nodeRef(b.node), nil, corev1.EventTypeWarning, reason, action, "%s", err.Error())
	klog.FromContext(ctx).V(4).Info("Recorded a refusal on the node", "reason", reason)
}

// healthChanged records a GPU's health change as an event on the node.
func (o *observers) healthChanged(g GPUState) {
	if o.events == nil {
		return
	}
	if g.Healthy {
		o.events.Eventf(nodeRef(o.node), nil, corev1.EventTypeNormal, EventGPUHealthy, "HealthCheck",
			"GPU %d (%s, %s) is healthy again", g.Index, g.UUID, g.Model)
		return
	}
	o.events.Eventf(nodeRef(o.node), nil, corev1.EventTypeWarning, EventGPUUnhealthy, "HealthCheck",
		"%s", fmt.Sprintf("GPU %d (%s, %s) is unhealthy and takes no new pods: %s", g.Index, g.UUID, g.Model, g.Reason))
}

// isolationProblem records one of the isolator's start problems on the
// node.
func (o *observers) isolationProblem(problem string) {
	if o.events == nil {
		return
	}
	o.events.Eventf(nodeRef(o.node), nil, corev1.EventTypeWarning, EventIsolationProblem, "Start", "%s", problem)
}
