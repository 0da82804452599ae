package allocator

import (
	"fmt"

	"github.com/gpuslice/gpuslice/api"
)

// Code classifies the result of Fit, as kube-scheduler's framework does.
type Code int

const (
	// Success means the pod fits.
	Success Code = iota
	// Unschedulable means the pod does not fit now but would on the node's
	// capacity, so removing pods (preemption) may help.
	Unschedulable
	// UnschedulableAndUnresolvable means the pod cannot fit on the node even
	// if it were empty.
	UnschedulableAndUnresolvable
	// Invalid means the request itself breaks the resource contract.
	Invalid
)

// Reason is a typed reason why a pod does not fit a node.
type Reason string

// Reasons Fit returns. Their text is what users see in FailedScheduling
// events.
const (
	ReasonNoGPUs          Reason = "node has no gpuslice GPUs"
	ReasonNoHealthyGPU    Reason = "no healthy GPU"
	ReasonModelNotAllowed Reason = "no GPU of an allowed model"
	// ReasonTooFewEligible: some GPUs are healthy and of an allowed model,
	// but fewer than the container spans.
	ReasonTooFewEligible Reason = "too few healthy GPUs of an allowed model"
	// ReasonEnforcementTooWeak: the healthy GPUs of an allowed model do not
	// enforce what the pod requires (api.AnnotationEnforcement).
	ReasonEnforcementTooWeak Reason = "no GPU enforces the isolation the pod requires"
	ReasonInsufficientMemory Reason = "insufficient gpu-mem on every GPU"
	ReasonInsufficientCore   Reason = "insufficient gpu-core on every GPU with enough gpu-mem"
	ReasonNoSlots            Reason = "no free sharing slot on GPUs with enough gpu-mem and gpu-core"
	ReasonNotEnoughGPUs      Reason = "not enough GPUs with room"
	ReasonInsufficientCPU    Reason = "insufficient cpu"
	ReasonInvalidRequest     Reason = "invalid gpuslice request"
	ReasonSpanNotAllowed     Reason = "container spans more GPUs than the node's isolation allows"
	// ReasonSandboxGPUs: a pod that runs containers (its runtime class maps
	// to no VM-sandbox mode) on a node whose usable GPUs are all for VM
	// sandboxes (api.IsolationAllowed).
	ReasonSandboxGPUs Reason = "GPUs are for VM sandboxes (vgpu/passthrough); the pod's runtime class runs containers"
	// ReasonNoSandboxGPU: a VM-sandbox pod on a node with no GPU of the
	// isolation mode its runtime class maps to (Status.Sandbox). Message
	// names the mode.
	ReasonNoSandboxGPU Reason = "no GPU of the isolation mode the pod's runtime class needs"
	// ReasonLargerThanInstance: the container's per-GPU share is larger
	// than one instance of every eligible vgpu or passthrough GPU
	// (api.FitsInstance); Status.Instance is the largest instance.
	ReasonLargerThanInstance Reason = "gpu-mem request larger than every vGPU instance"
)

// Status is the result of Fit. It keeps the numbers behind its reason as
// fields and formats text only in Message, as kube-scheduler's
// InsufficientResource does: Fit runs on thousands of nodes per pod, and
// only the statuses shown to a user are ever formatted.
type Status struct {
	Code   Code
	Reason Reason
	// Container names the container that did not fit, if any.
	Container string
	// GPUs is how many GPUs the container asks for, and PerGPU what it asks
	// on each.
	GPUs   int
	PerGPU Units
	// Eligible is how many GPUs are healthy and of an allowed model: the
	// ones the capacity checks ran on.
	Eligible int
	// WithSlices is how many eligible GPUs had the slices free.
	WithSlices int
	// Unhealthy is how many GPUs are unhealthy.
	Unhealthy int
	// OtherModel is how many healthy GPUs are of a model the pod does not
	// allow.
	OtherModel int
	// WeakEnforcement is how many healthy GPUs of an allowed model enforce
	// less than MinEnforcement, the pod's requirement.
	WeakEnforcement int
	MinEnforcement  api.Enforcement
	// OtherIsolation is how many healthy GPUs of an allowed model are of an
	// isolation mode the pod may not use; Sandbox is the pod's VM-sandbox
	// mode ("" for a pod that runs containers, api.PodRequest.Sandbox).
	OtherIsolation int
	Sandbox        api.IsolationMode
	// Instance is the largest instance of the eligible whole-instance GPUs
	// that the share does not fit (ReasonLargerThanInstance).
	Instance Units
	// Charge is the largest charge of PerGPU on the GPUs whose instance it
	// fits (Device.Charge): PerGPU itself on shared GPUs, a whole instance
	// on vgpu and passthrough GPUs. Zero when no GPU got that far.
	Charge Units
	// SpanAllowed is the most GPUs the node lets one container span
	// (ReasonSpanNotAllowed).
	SpanAllowed int
}

// IsSuccess reports whether the status is nil or Success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// Message returns the human-readable reason.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	msg := string(s.Reason)
	if s.Reason == ReasonNoSandboxGPU && s.Sandbox != "" {
		msg = fmt.Sprintf("no GPU of isolation mode %s, which the pod's runtime class needs", s.Sandbox)
	}
	if s.Container == "" {
		return msg
	}
	// The detail speaks of the check that stopped the container first, in
	// the order Fit applies them to each GPU: health, model, isolation
	// mode, enforcement, instance size, gpu-mem, gpu-core, slots, then the
	// GPU count.
	var detail string
	switch s.Reason {
	case ReasonNoHealthyGPU:
		detail = fmt.Sprintf("%d unhealthy", s.Unhealthy)
	case ReasonModelNotAllowed:
		detail = fmt.Sprintf("%d healthy GPU(s) of other models", s.OtherModel)
		if s.Unhealthy > 0 {
			detail += fmt.Sprintf(", %d unhealthy", s.Unhealthy)
		}
	case ReasonEnforcementTooWeak:
		detail = fmt.Sprintf("requires %s enforcement, %d GPU(s) of an allowed model enforce less", s.MinEnforcement, s.WeakEnforcement)
	case ReasonTooFewEligible:
		detail = fmt.Sprintf("asks for %d GPUs, %d are healthy and of an allowed model (%d of other models, %d unhealthy)",
			s.GPUs, s.Eligible, s.OtherModel, s.Unhealthy)
		if s.OtherIsolation > 0 {
			detail += fmt.Sprintf("; %d of an isolation mode the pod may not use", s.OtherIsolation)
		}
		if s.WeakEnforcement > 0 {
			detail += fmt.Sprintf("; %d enforce less than %s", s.WeakEnforcement, s.MinEnforcement)
		}
	case ReasonSandboxGPUs:
		detail = fmt.Sprintf("%d healthy GPU(s) of an allowed model are vgpu or passthrough", s.OtherIsolation)
	case ReasonNoSandboxGPU:
		detail = fmt.Sprintf("%d healthy GPU(s) of an allowed model are of other isolation modes", s.OtherIsolation)
	case ReasonLargerThanInstance:
		detail = fmt.Sprintf("needs %d slices, %d core per GPU; the largest instance holds %d slices, %d core",
			s.PerGPU.Slices, s.PerGPU.Core, s.Instance.Slices, s.Instance.Core)
	case ReasonSpanNotAllowed:
		detail = fmt.Sprintf("asks for %d GPUs, the node's isolation allows %d per container", s.GPUs, s.SpanAllowed)
	case ReasonInvalidRequest, ReasonNoGPUs, ReasonInsufficientCPU:
	default:
		need := s.PerGPU
		if !s.Charge.IsZero() {
			need = s.Charge
		}
		detail = fmt.Sprintf("needs %d GPU(s) with %d slices, %d core, %d slot free", s.GPUs, need.Slices, need.Core, need.Slots)
		if need != s.PerGPU {
			detail += fmt.Sprintf(" (a whole instance for a share of %d slices, %d core)", s.PerGPU.Slices, s.PerGPU.Core)
		}
		detail += fmt.Sprintf("; %d have the slices", s.WithSlices)
	}
	msg = fmt.Sprintf("%s (container %q", msg, s.Container)
	if detail != "" {
		msg += ": " + detail
	}
	return msg + ")"
}

func (s *Status) String() string { return s.Message() }
