package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gpuslice/gpuslice/api"
)

// The invariant every test of issue 9's classes checks at every poll: no
// GPU is over-committed. It is computed here, from the API server's pods
// and nodes, independently of the extender and of package inspect:
//
//   - a GPU's capacity is its slices, core units and slots in its node's
//     current inventory;
//   - a pod's charge on a GPU is what its placement gives its containers
//     there: app containers and restartable init containers (sidecars) run
//     together and add up; a regular init container runs alone before them
//     (beside the sidecars), so the pod holds the larger of the two;
//   - on a GPU of whole instances (isolation vgpu or passthrough) each
//     container holds one whole instance, whatever its request: the
//     inventory's instanceMiB in slices, the GPU's core units split over
//     its instances, one slot;
//   - charges on a GPU that is no longer in the inventory are dropped, but
//     the pod's charges on its other GPUs stay;
//   - terminal pods hold nothing;
//   - trusted overrides a pod's placement annotation with the one the test
//     knows is real (after it forged the annotation); "" means none.

// units is a share of one GPU.
type units struct{ slices, core, slots int64 }

func (u units) add(o units) units {
	return units{u.slices + o.slices, u.core + o.core, u.slots + o.slots}
}
func (u units) max(o units) units {
	return units{max(u.slices, o.slices), max(u.core, o.core), max(u.slots, o.slots)}
}
func (u units) fits(c units) bool {
	return u.slices <= c.slices && u.core <= c.core && u.slots <= c.slots
}

// ledger is the charges of every GPU of a set of nodes.
type ledger struct {
	capacity map[string]units // GPU UUID
	node     map[string]string
	used     map[string]units
	holders  map[string][]string
}

// podCharges returns a pod's charge per GPU UUID under its placement.
// instance maps a GPU UUID to the units of one of its instances, for the
// GPUs of whole-instance modes only.
func podCharges(p *corev1.Pod, pl *api.Placement, instance map[string]units) map[string]units {
	restartable := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		restartable[c.Name] = c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
	}
	running := map[string]units{} // app containers + sidecars
	initMax := map[string]units{} // the largest regular init container
	share := func(d api.DeviceShare) units {
		if in, ok := instance[d.UUID]; ok {
			return in
		}
		return units{d.Slices, d.Core, d.Slots}
	}
	for _, c := range pl.Containers {
		for _, d := range c.Devices {
			u := share(d)
			if c.Init && !restartable[c.Name] {
				initMax[d.UUID] = initMax[d.UUID].max(u)
			} else {
				running[d.UUID] = running[d.UUID].add(u)
			}
		}
	}
	out := map[string]units{}
	for uuid, u := range running {
		out[uuid] = u
	}
	for uuid, u := range initMax {
		// A regular init container runs beside the sidecars only.
		var side units
		for _, c := range pl.Containers {
			if c.Init && restartable[c.Name] {
				for _, d := range c.Devices {
					if d.UUID == uuid {
						side = side.add(share(d))
					}
				}
			}
		}
		out[uuid] = out[uuid].max(u.add(side))
	}
	return out
}

// buildLedger charges the pods' placements to the nodes' GPUs.
func buildLedger(nodes []corev1.Node, pods []corev1.Pod, trusted map[types.UID]string) (*ledger, error) {
	l := &ledger{capacity: map[string]units{}, node: map[string]string{}, used: map[string]units{}, holders: map[string][]string{}}
	instance := map[string]units{}
	for _, n := range nodes {
		raw, ok := n.Annotations[api.AnnotationInventory]
		if !ok {
			continue
		}
		inv, err := api.ParseInventory(raw)
		if err != nil {
			return nil, fmt.Errorf("node %s inventory: %w", n.Name, err)
		}
		for _, g := range inv.GPUs {
			l.capacity[g.UUID] = units{g.Slices, g.CoreUnits, g.Slots}
			l.node[g.UUID] = n.Name
			if (g.Isolation == "vgpu" || g.Isolation == "passthrough") && g.Slots > 0 {
				instance[g.UUID] = units{g.InstanceMiB / inv.SliceMiB, g.CoreUnits / g.Slots, 1}
			}
		}
	}
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		raw, ok := trusted[p.UID]
		if !ok {
			raw, ok = p.Annotations[api.AnnotationPlacement]
		}
		if !ok || raw == "" {
			continue
		}
		pl, err := api.ParsePlacement(raw)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s placement: %w", p.Namespace, p.Name, err)
		}
		for uuid, u := range podCharges(p, pl, instance) {
			if _, known := l.capacity[uuid]; !known || l.node[uuid] != p.Spec.NodeName {
				continue
			}
			l.used[uuid] = l.used[uuid].add(u)
			l.holders[uuid] = append(l.holders[uuid], fmt.Sprintf("%s/%s %+v", p.Namespace, p.Name, u))
		}
	}
	return l, nil
}

// overcommitted returns one line per GPU whose charges exceed its capacity.
func (l *ledger) overcommitted() []string {
	var out []string
	for uuid, u := range l.used {
		if c := l.capacity[uuid]; !u.fits(c) {
			out = append(out, fmt.Sprintf("node %s GPU %s: used %+v of %+v by %s", l.node[uuid], uuid, u, c, strings.Join(l.holders[uuid], ", ")))
		}
	}
	slices.Sort(out)
	return out
}

// invariant lists the env's nodes and every bound pod of the cluster (all
// namespaces: a pod outside the test's namespace may hold shares on its
// nodes) and fails the test at once when a GPU is over-committed.
func (e *env) invariant(ctx context.Context, trusted map[types.UID]string) *ledger {
	e.t.Helper()
	nodes, err := e.nodes(ctx)
	if err == nil {
		var pods *corev1.PodList
		if pods, err = e.c.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName!="}); err == nil {
			return e.invariantOf(nodes, pods.Items, trusted)
		}
	}
	if ctx.Err() != nil {
		// The poll that called us timed out; it reports why.
		return nil
	}
	e.t.Fatalf("invariant: %v", err)
	return nil
}

// invariantOf is invariant over the given nodes and pods.
func (e *env) invariantOf(nodes []corev1.Node, pods []corev1.Pod, trusted map[types.UID]string) *ledger {
	e.t.Helper()
	l, err := buildLedger(nodes, pods, trusted)
	if err != nil {
		e.t.Fatal(err)
	}
	if oc := l.overcommitted(); len(oc) > 0 {
		e.t.Fatalf("GPUs over-committed:\n%s", strings.Join(oc, "\n"))
	}
	return l
}
