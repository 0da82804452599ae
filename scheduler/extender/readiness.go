package extender

import (
	"errors"
	"sync/atomic"
)

// Readiness gates the verbs: filter, prioritize, preempt and bind are
// answered only when the cache is complete (both informers synced and every
// object they listed applied to the cache) and, with leader election, this
// replica leads. Until then they get a retryable error: kube-scheduler then
// retries the pod, rather than deciding on a partial view of the placed
// pods (which would over-commit GPUs).
//
// The zero value is not ready and does not need a leader. It is safe for
// concurrent use.
type Readiness struct {
	needLeader bool
	synced     atomic.Bool
	leading    atomic.Bool
}

// NewReadiness returns a gate that is not ready; needLeader makes it also
// wait for SetLeading(true).
func NewReadiness(needLeader bool) *Readiness {
	return &Readiness{needLeader: needLeader}
}

// SetSynced records whether the cache is complete.
func (r *Readiness) SetSynced(v bool) { r.synced.Store(v) }

// SetLeading records whether this replica holds the leader lease.
func (r *Readiness) SetLeading(v bool) { r.leading.Store(v) }

// ErrNotReady is wrapped by the errors Check returns.
var ErrNotReady = errors.New("not ready")

// Check returns nil when the verbs may be answered, else an error wrapping
// ErrNotReady that says why ("not ready: ...").
func (r *Readiness) Check() error {
	switch {
	case r.needLeader && !r.leading.Load():
		return notReady("this replica is not the leader")
	case !r.synced.Load():
		return notReady("the node and pod caches are not synced yet")
	}
	return nil
}

func notReady(why string) error {
	return &notReadyError{why: why}
}

type notReadyError struct{ why string }

func (e *notReadyError) Error() string { return ErrNotReady.Error() + ": " + e.why }
func (e *notReadyError) Unwrap() error { return ErrNotReady }
