package cache

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// PodView is what a Pod holds, for tests outside the package.
type PodView struct {
	Key, Namespace, Name, ResourceVersion string
	UID                                   types.UID
	Deleting                              bool
	Node                                  string
	Placed, Terminal, Reconcile           bool
	Placement                             *api.Placement
	Request                               *api.PodRequest
	Charged                               bool // no error: the placement can be charged
}

// ViewPod returns what p holds.
func ViewPod(p *Pod) PodView {
	return PodView{
		Key: p.key, Namespace: p.Namespace, Name: p.Name, ResourceVersion: p.ResourceVersion, UID: p.UID,
		Deleting: p.DeletionTimestamp != nil, Node: p.node, Placed: p.placed, Terminal: p.terminal, Reconcile: p.reconcile,
		Placement: p.placement, Request: p.req, Charged: p.placed && p.err == nil,
	}
}

// PodOf is podOf, for tests.
var PodOf = podOf

// NodeOf is nodeOf, for tests.
var NodeOf = nodeOf

// SameInventory is Node.sameInventory, for tests.
func SameInventory(a, b *Node) bool { return a.sameInventory(b) }

// StaleRevisions is staleRevisions, for tests.
const StaleRevisions = staleRevisions

// RefreshWidth is refreshWidth, for tests.
var RefreshWidth = refreshWidth
