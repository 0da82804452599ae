package extender

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/scheduler/cache"
)

// Event reasons the extender records on pods (events.k8s.io, reporting
// controller gpuslice-extender).
const (
	// EventInvalidRequest: the pod's gpuslice request breaks the resource
	// contract; it can never be placed as it is.
	EventInvalidRequest = "InvalidGPURequest"
	// EventFailedBind: the bind of a filtered pod failed.
	EventFailedBind = "FailedGPUBind"
	// EventActionSchedule is the action of the filter's events,
	// EventActionBind that of bind's.
	EventActionSchedule = "Scheduling"
	EventActionBind     = "Binding"
)

// eventReasons maps the allocator's first blocker to the reason of the
// event recorded on a pod no node can place (CamelCase, as Kubernetes event
// reasons are).
var eventReasons = map[allocator.Reason]string{
	allocator.ReasonNoGPUs:             "NoGPUs",
	allocator.ReasonNoHealthyGPU:       "NoHealthyGPU",
	allocator.ReasonModelNotAllowed:    "GPUModelNotAllowed",
	allocator.ReasonTooFewEligible:     "TooFewEligibleGPUs",
	allocator.ReasonInsufficientMemory: "InsufficientGPUMemory",
	allocator.ReasonInsufficientCore:   "InsufficientGPUCore",
	allocator.ReasonNoSlots:            "NoGPUSharingSlot",
	allocator.ReasonNotEnoughGPUs:      "NotEnoughGPUs",
	allocator.ReasonInsufficientCPU:    "InsufficientCPU",
	allocator.ReasonSpanNotAllowed:     "GPUSpanNotAllowed",
	allocator.ReasonSandboxGPUs:        "GPUIsolationMismatch",
	allocator.ReasonNoSandboxGPU:       "GPUIsolationMismatch",
	allocator.ReasonLargerThanInstance: "GPUInstanceTooSmall",
}

// UnplaceableReasons returns every reason of the events on pods no node
// can place, sorted.
func UnplaceableReasons() []string {
	out := []string{EventNoInventory, EventInvalidRequest, "Unschedulable"}
	for _, r := range eventReasons {
		out = append(out, r)
	}
	sort.Strings(out)
	// Several blockers may share one event reason.
	return slices.Compact(out)
}

// EventNoInventory is the reason when most nodes have no usable GPU
// inventory (none published, unreadable, another slice size).
const EventNoInventory = "NoGPUInventory"

// DefaultEventInterval is how often at most the extender records an event
// of one reason on one pod, and logs a rejection at its default verbosity.
const DefaultEventInterval = 5 * time.Minute

// maxNoticed bounds the pods the notifier remembers; beyond it the
// entries older than the interval are dropped, then all.
const maxNoticed = 20000

// notifier records events and first-time logs at most once per pod, reason
// and interval: kube-scheduler retries an unschedulable pod on every
// scheduling cycle, and one event (or log line) per cycle floods both.
// It is safe for concurrent use.
type notifier struct {
	rec   events.EventRecorder // nil: no events
	clock clock.PassiveClock
	every time.Duration

	mu   sync.Mutex
	last map[noticeKey]time.Time
}

type noticeKey struct {
	uid    types.UID
	reason string
}

func newNotifier(rec events.EventRecorder, clk clock.PassiveClock, every time.Duration) *notifier {
	if every <= 0 {
		every = DefaultEventInterval
	}
	return &notifier{rec: rec, clock: clk, every: every, last: map[noticeKey]time.Time{}}
}

// first reports whether nothing of this reason was noticed on the pod
// within the interval, and notes it now when so.
func (n *notifier) first(uid types.UID, reason string) bool {
	now := n.clock.Now()
	k := noticeKey{uid, reason}
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.last[k]; ok && now.Sub(t) < n.every {
		return false
	}
	if len(n.last) >= maxNoticed {
		for key, t := range n.last {
			if now.Sub(t) >= n.every {
				delete(n.last, key)
			}
		}
		if len(n.last) >= maxNoticed {
			clear(n.last)
		}
	}
	n.last[k] = now
	return true
}

// warn records a Warning event on pod if first says so, and reports
// whether it did (or would have, without a recorder).
func (n *notifier) warn(pod *v1.Pod, reason, action, note string) bool {
	if !n.first(pod.UID, reason) {
		return false
	}
	if n.rec != nil {
		n.rec.Eventf(pod, nil, v1.EventTypeWarning, reason, action, "%s", note)
	}
	return true
}

// podRef is a pod object that names the pod, for an event on a pod the
// extender knows by name and UID only (bind).
func podRef(namespace, name string, uid types.UID) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: uid}}
}

// unplaceable summarises why no node could take a pod: the event reason of
// the blocker on most nodes, and a note counting every blocker.
func unplaceable(results []cache.NodeFit) (reason, note string) {
	counts := map[string]int{}
	reasons := map[string]string{}
	for _, r := range results {
		if r.Code == allocator.Success {
			continue
		}
		text, ev := r.Reason, EventNoInventory
		if r.Status != nil {
			text = string(r.Status.Reason)
			if e, ok := eventReasons[r.Status.Reason]; ok {
				ev = e
			} else {
				ev = "Unschedulable"
			}
		}
		counts[text]++
		reasons[text] = ev
	}
	texts := make([]string, 0, len(counts))
	for t := range counts {
		texts = append(texts, t)
	}
	sort.Slice(texts, func(i, j int) bool {
		if counts[texts[i]] != counts[texts[j]] {
			return counts[texts[i]] > counts[texts[j]]
		}
		return texts[i] < texts[j]
	})
	parts := make([]string, len(texts))
	for i, t := range texts {
		parts[i] = fmt.Sprintf("%d %s", counts[t], t)
	}
	reason = EventNoInventory
	if len(texts) > 0 {
		reason = reasons[texts[0]]
	}
	return reason, fmt.Sprintf("0/%d nodes can place the pod's GPU request: %s", len(results), strings.Join(parts, ", "))
}
