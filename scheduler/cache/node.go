package cache

import (
	"crypto/sha256"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/api"
)

// Node is what the cache reads of a node, taken from its *v1.Node once:
// its name and its inventory annotation, parsed.
//
// The extender's node informer stores a Node in place of each *v1.Node
// (TransformNode): the parsed inventory is shared with the cache's entry
// for the node, so the annotation (several KB for an 8-GPU node) is not
// kept a second time as text. A digest of the annotation tells the update
// handler whether the inventory changed.
//
// A Node is read-only once made. It implements runtime.Object and
// metav1.Object, as an informer's store needs; its ObjectMeta holds only
// the name, UID, resource version and deletion timestamp.
type Node struct {
	metav1.ObjectMeta
	// has: the node has an inventory annotation; digest is its SHA-256.
	has    bool
	digest [sha256.Size]byte
	// inv is the parsed inventory; err says why it could not be parsed.
	inv *api.Inventory
	err error
}

// NewNode reads what the cache needs of node. The result shares no memory
// with node except strings.
func NewNode(node *v1.Node) *Node {
	raw, has := node.Annotations[api.AnnotationInventory]
	n := newNode(node.Name, raw, has)
	n.UID, n.ResourceVersion, n.DeletionTimestamp = node.UID, node.ResourceVersion, node.DeletionTimestamp
	return n
}

// newNode parses the inventory annotation raw of node name (has: the node
// has the annotation).
func newNode(name, raw string, has bool) *Node {
	n := &Node{ObjectMeta: metav1.ObjectMeta{Name: name}, has: has && raw != ""}
	if !n.has {
		return n
	}
	n.digest = sha256.Sum256([]byte(raw))
	n.inv, n.err = api.ParseInventory(raw)
	return n
}

// sameInventory reports whether two reads of a node carry the same
// inventory annotation.
func (n *Node) sameInventory(o *Node) bool { return n.has == o.has && n.digest == o.digest }

// inventory returns the node's usable inventory for a cluster of sliceMiB
// slices, or nil and why it is not usable.
func (n *Node) inventory(sliceMiB int64) (*api.Inventory, string) {
	switch {
	case !n.has:
		return nil, "node has no gpuslice GPU inventory"
	case n.err != nil:
		return nil, fmt.Sprintf("node's gpuslice inventory is unreadable: %v", n.err)
	case n.inv.SliceMiB != sliceMiB:
		return nil, fmt.Sprintf("node's inventory uses %d MiB slices, the cluster uses %d MiB", n.inv.SliceMiB, sliceMiB)
	}
	return n.inv, ""
}

// GetObjectKind implements runtime.Object: a Node carries no type
// metadata.
func (n *Node) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. The copy shares the parsed
// inventory, which nothing modifies.
func (n *Node) DeepCopyObject() runtime.Object {
	c := *n
	meta := &n.ObjectMeta
	meta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// TransformNode is an informer transform (SharedIndexInformer.SetTransform)
// that stores a *v1.Node as a *Node. Other objects pass unchanged (a Node
// again, a tombstone).
func TransformNode(obj any) (any, error) {
	if node, ok := obj.(*v1.Node); ok {
		return NewNode(node), nil
	}
	return obj, nil
}

// nodeOf returns the Node of an informer's object: a *Node, a *v1.Node
// (from an informer without TransformNode), or either in a tombstone.
func nodeOf(obj any) (*Node, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *Node:
		return o, true
	case *v1.Node:
		return NewNode(o), true
	}
	return nil, false
}
