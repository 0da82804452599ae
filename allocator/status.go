package allocator

import "fmt"

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
	ReasonNoGPUs             Reason = "node has no gpuslice GPUs"
	ReasonNoHealthyGPU       Reason = "no healthy GPU"
	ReasonModelNotAllowed    Reason = "no GPU of an allowed model"
	ReasonInsufficientMemory Reason = "insufficient gpu-mem on every GPU"
	ReasonInsufficientCore   Reason = "insufficient gpu-core on every GPU with enough gpu-mem"
	ReasonNoSlots            Reason = "no free sharing slot on GPUs with enough gpu-mem and gpu-core"
	ReasonNotEnoughGPUs      Reason = "not enough GPUs with room"
	ReasonInsufficientCPU    Reason = "insufficient cpu"
	ReasonInvalidRequest     Reason = "invalid gpuslice request"
	ReasonSpanNotAllowed     Reason = "container spans more GPUs than the node's isolation allows"
)

// Status is the result of Fit.
type Status struct {
	Code   Code
	Reason Reason
	// Container names the container that did not fit, if any.
	Container string
	// Detail adds numbers to the reason (e.g. "needs 2 GPUs with 20 slices").
	Detail string
}

// IsSuccess reports whether the status is nil or Success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// Message returns the human-readable reason.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	msg := string(s.Reason)
	if s.Container != "" {
		msg = fmt.Sprintf("%s (container %q", msg, s.Container)
		if s.Detail != "" {
			msg += ": " + s.Detail
		}
		msg += ")"
	} else if s.Detail != "" {
		msg += " (" + s.Detail + ")"
	}
	return msg
}

func (s *Status) String() string { return s.Message() }
