package cache

import (
	"sync/atomic"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
)

// maxFitMemos is how many (policy, request) pairs FitNodes remembers: the
// distinct shapes of a burst of pods (a Job's or a ReplicaSet's pods ask
// for the same thing). A memo holds one outcome per node, 48 bytes.
const maxFitMemos = 8

// staleRevisions is how many publications behind the policy's current
// revision a remembered fit may be and still serve filter: a
// fragmentation-aware policy publishes a new learned distribution now and
// then (allocator.FGDConfig.ShareStep), and refitting every node at once on
// the next call would make that call as slow as a cold one. Instead a call
// serves the older fits outside its refresh window (window) and refits
// those inside it, so that a memo catches up over refreshSpread calls. A
// fit more than staleRevisions behind is refitted wherever it is.
const staleRevisions = 8

// refreshSpread is over how many calls the refresh window sweeps every
// node entry once; minRefresh is the window's least width.
const (
	refreshSpread = 16
	minRefresh    = 32
)

// refreshWidth is the width of the refresh window over n entry positions.
func refreshWidth(n int) int {
	return min(n, max(minRefresh, (n+refreshSpread-1)/refreshSpread))
}

// fitMemo is the outcome of fitting one request with one reusable policy
// (allocator.Revision) on every node FitNodes saw, by node-entry position,
// with the entry's version and the policy's revision at the time. An
// outcome is reused only while its entry keeps that version: any change of
// the node's inventory or charges gives the entry a new version
// (touchLocked), and versions are never reused, so a deleted node's
// position taken by a new node never matches either. An outcome of an
// earlier revision is reused only within staleRevisions and outside the
// call's refresh window, which moves on by its width with every call, so
// that each position is refreshed at least every refreshSpread calls
// whatever the policy publishes meanwhile: what it may get wrong is the
// score (a node's rank among the feasible ones, from a distribution a few
// publications old) and, for a pod of several GPU containers, whether it
// fits (the policy's choice of GPUs for one container decides the room
// left for the next); for a pod of one GPU container whether it fits does
// not depend on the revision. The memo only spares filter the work of
// fitting; bind fits again with the current revision (a node where the
// pod no longer fits is refused and the pod retried) and Assume still
// checks the shares under the write lock, so a wrong memo could make
// filter wrong but never over-commit a GPU.
type fitMemo struct {
	policy string
	// of is the policy instance of the revisions (allocator.Rev.Of); seq is
	// the revision this call fits at.
	of  any
	seq uint64
	req *api.PodRequest
	// from is where this call's refresh window starts, width its width,
	// positions the number of entry positions it wraps around.
	from, width, positions int
	// versions, seqs and fits are indexed by nodeEntry.idx; version 0 is
	// empty.
	versions []uint64
	seqs     []uint64
	fits     []NodeFit
	// entries is scratch for one call: the entry of each name refitted.
	entries []*nodeEntry
}

func (m *fitMemo) matches(pol allocator.Policy, req *api.PodRequest) bool {
	return m.policy == pol.Name() && m.req.Equal(req)
}

// window sets this call's refresh window over positions entry positions,
// where the last call's ended.
func (m *fitMemo) window(positions int) {
	if m.positions > 0 {
		m.from = (m.from + m.width) % max(positions, 1)
	}
	m.width, m.positions = refreshWidth(positions), positions
}

// lookup returns the remembered outcome for entry e, if its version is
// current, its revision within staleRevisions, and it is of the current
// revision or outside the refresh window.
func (m *fitMemo) lookup(e *nodeEntry) (NodeFit, bool) {
	if e.idx >= len(m.versions) || m.versions[e.idx] != e.version || m.seq-m.seqs[e.idx] > staleRevisions {
		return NodeFit{}, false
	}
	if m.seqs[e.idx] != m.seq && (e.idx-m.from+m.positions)%m.positions < m.width {
		return NodeFit{}, false
	}
	return m.fits[e.idx], true
}

// record remembers out[i] for entries[i], for every name refitted. It runs
// on one goroutine, after the call's workers.
func (m *fitMemo) record(out []NodeFit, nodes int) {
	if len(m.versions) < nodes {
		grow := nodes - len(m.versions)
		m.versions = append(m.versions, make([]uint64, grow)...)
		m.seqs = append(m.seqs, make([]uint64, grow)...)
		m.fits = append(m.fits, make([]NodeFit, grow)...)
	}
	for i, e := range m.entries {
		if e != nil {
			m.versions[e.idx], m.seqs[e.idx], m.fits[e.idx] = e.version, m.seq, out[i]
		}
		m.entries[i] = nil
	}
}

// fitMemos is a small set of memos that concurrent FitNodes calls share
// without a lock: a call takes a memo out of its slot (so no other call
// touches it) and puts it back when done. Two concurrent calls for the
// same request simply work on two memos.
type fitMemos struct {
	slots [maxFitMemos]atomic.Pointer[fitMemo]
	next  atomic.Uint32
}

// take returns the memo for (pol, req), taken out of its slot, or a new
// empty one; nil when pol's fits are not reusable. A memo of another
// instance of pol's name comes back emptied. The revision is read before
// any fit: a fit that saw a later one is recorded under the earlier, and
// so refitted sooner than it needs.
func (s *fitMemos) take(pol allocator.Policy, req *api.PodRequest) *fitMemo {
	rev, ok := allocator.Revision(pol)
	if !ok {
		return nil
	}
	for i := range s.slots {
		m := s.slots[i].Load()
		if m != nil && m.matches(pol, req) && s.slots[i].CompareAndSwap(m, nil) {
			if m.of != rev.Of || rev.Seq < m.seq {
				clear(m.versions)
			}
			m.of, m.seq = rev.Of, rev.Seq
			return m
		}
	}
	return &fitMemo{policy: pol.Name(), of: rev.Of, seq: rev.Seq, req: req.Clone()}
}

// put returns a memo to an empty slot, or in place of the next one in turn.
func (s *fitMemos) put(m *fitMemo) {
	for i := range s.slots {
		if s.slots[i].CompareAndSwap(nil, m) {
			return
		}
	}
	s.slots[int(s.next.Add(1))%maxFitMemos].Store(m)
}
