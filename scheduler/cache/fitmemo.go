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

// fitMemo is the outcome of fitting one request with one reusable policy
// (allocator.Revision) at one revision on every node FitNodes saw, by
// node-entry position, with the entry's version at the time. A new
// revision of the policy (a fragmentation-aware policy's distribution
// moved) empties the memo. An outcome is reused only while
// its entry keeps that version: any change of the node's inventory or
// charges gives the entry a new version (touchLocked), and versions are
// never reused, so a deleted node's position taken by a new node never
// matches either. The memo only spares filter the work of fitting; Assume
// still checks the shares under the write lock, so a wrong memo could make
// filter wrong but never over-commit a GPU.
type fitMemo struct {
	policy string
	rev    any
	req    *api.PodRequest
	// versions and fits are indexed by nodeEntry.idx; version 0 is empty.
	versions []uint64
	fits     []NodeFit
	// entries is scratch for one call: the entry of each name.
	entries []*nodeEntry
}

func (m *fitMemo) matches(pol allocator.Policy, req *api.PodRequest) bool {
	return m.policy == pol.Name() && m.req.Equal(req)
}

// lookup returns the remembered outcome for entry e, if still current.
func (m *fitMemo) lookup(e *nodeEntry) (NodeFit, bool) {
	if e.idx < len(m.versions) && m.versions[e.idx] == e.version {
		return m.fits[e.idx], true
	}
	return NodeFit{}, false
}

// record remembers out[i] for entries[i], for every name that had an
// entry. It runs on one goroutine, after the call's workers.
func (m *fitMemo) record(out []NodeFit, nodes int) {
	if len(m.versions) < nodes {
		m.versions = append(m.versions, make([]uint64, nodes-len(m.versions))...)
		m.fits = append(m.fits, make([]NodeFit, nodes-len(m.fits))...)
	}
	for i, e := range m.entries {
		if e != nil {
			m.versions[e.idx], m.fits[e.idx] = e.version, out[i]
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
// empty one; nil when pol's fits are not reusable. A memo of an earlier
// revision of pol comes back emptied. The revision is read before any
// fit: a fit that saw a later one is recorded under the earlier, which no
// later call asks for.
func (s *fitMemos) take(pol allocator.Policy, req *api.PodRequest) *fitMemo {
	rev, ok := allocator.Revision(pol)
	if !ok {
		return nil
	}
	for i := range s.slots {
		m := s.slots[i].Load()
		if m != nil && m.matches(pol, req) && s.slots[i].CompareAndSwap(m, nil) {
			if m.rev != rev {
				m.rev = rev
				clear(m.versions)
			}
			return m
		}
	}
	return &fitMemo{policy: pol.Name(), rev: rev, req: req.Clone()}
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
