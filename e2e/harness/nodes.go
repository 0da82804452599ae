package harness

import (
	"context"
	"crypto/sha1"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/gpuslice/gpuslice/api"
)

// Shape describes a simulated GPU server.
type Shape struct {
	// Model is the GPU model as NVML names it.
	Model     string
	MemoryMiB int64
	GPUs      int
	// Slots is the number of sharing slots per GPU.
	Slots     int64
	Isolation api.IsolationMode
	// Link returns the interconnect between GPUs i and j (i != j).
	Link func(i, j int) api.Link
	// NUMA returns the NUMA node of GPU i.
	NUMA func(i int) int
}

// nvlinkAllToAll links every pair of GPUs with n NVLink lanes (an NVSwitch
// system).
func nvlinkAllToAll(n int) func(i, j int) api.Link {
	return func(_, j int) api.Link { return api.Link{Peer: j, Type: api.LinkNVLink, NVLinks: n} }
}

// halves puts the first half of the GPUs on NUMA node 0, the rest on 1.
func halves(gpus int) func(int) int { return func(i int) int { return i * 2 / gpus } }

// A100x8 is a DGX A100 with 40 GB GPUs: 8 GPUs, NVLink all-to-all
// (12 lanes through NVSwitch), two NUMA nodes, 48 MPS slots per GPU.
func A100x8() Shape {
	return Shape{Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 8, Slots: 48,
		Isolation: api.IsolationMPS, Link: nvlinkAllToAll(12), NUMA: halves(8)}
}

// H100x8 is a DGX H100: 8 80 GB GPUs, NVLink all-to-all (18 lanes), two
// NUMA nodes, 48 MPS slots per GPU.
func H100x8() Shape {
	return Shape{Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, GPUs: 8, Slots: 48,
		Isolation: api.IsolationMPS, Link: nvlinkAllToAll(18), NUMA: halves(8)}
}

// T4x4 is a PCIe server with four 16 GB T4s: GPUs 0-1 and 2-3 share a PCIe
// switch, the pairs sit on different sockets; 48 MPS slots per GPU.
func T4x4() Shape {
	return Shape{Model: "Tesla T4", MemoryMiB: 16384, GPUs: 4, Slots: 48, Isolation: api.IsolationMPS,
		Link: func(i, j int) api.Link {
			if i/2 == j/2 {
				return api.Link{Peer: j, Type: api.LinkPCIeSwitch}
			}
			return api.Link{Peer: j, Type: api.LinkCrossSocket}
		},
		NUMA: halves(4)}
}

// Inventory builds the inventory the device plugin would publish for a
// server of this shape named node, with the given slice size. GPU UUIDs are
// derived from the node name and index, so they are unique in a cluster.
func (s Shape) Inventory(node string, sliceMiB int64) *api.Inventory {
	inv := &api.Inventory{Version: api.InventoryVersion, SliceMiB: sliceMiB}
	for i := 0; i < s.GPUs; i++ {
		h := sha1.Sum(fmt.Appendf(nil, "%s/%d", node, i))
		g := api.GPU{
			Index:     i,
			UUID:      fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]),
			Model:     s.Model,
			MemoryMiB: s.MemoryMiB,
			Slices:    s.MemoryMiB / sliceMiB,
			Slots:     s.Slots,
			CoreUnits: api.CoreUnitsPerGPU,
			NUMANode:  -1,
			PCIBusID:  fmt.Sprintf("00000000:%02X:00.0", 0x10+i*0x10),
			Healthy:   true,
			Isolation: s.Isolation,
		}
		if s.NUMA != nil {
			g.NUMANode = s.NUMA(i)
		}
		if s.Link != nil {
			for j := 0; j < s.GPUs; j++ {
				if j != i {
					g.Links = append(g.Links, s.Link(i, j))
				}
			}
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	return inv
}

// GPUNode describes a simulated node.
type GPUNode struct {
	Name string
	// Inventory is published in the gpuslice.io/inventory annotation and
	// sets the node's gpuslice capacity. Nil makes a node without GPUs.
	Inventory *api.Inventory
	Labels    map[string]string
	// CPU, Memory and Pods are the node's capacity (defaults 64, 512Gi,
	// 1000).
	CPU, Memory string
	Pods        int64
}

// GPUResources returns the gpuslice capacity an inventory advertises:
// gpu-mem is the sum of slices, gpu-core the sum of core units, gpu-count
// the sum of sharing slots. Unhealthy GPUs are included, as the device
// plugin advertises them (their devices are marked unhealthy).
func GPUResources(inv *api.Inventory) corev1.ResourceList {
	var slices, core, slots int64
	for _, g := range inv.GPUs {
		slices += g.Slices
		core += g.CoreUnits
		slots += g.Slots
	}
	return corev1.ResourceList{
		api.ResourceGPUMem:   *resource.NewQuantity(slices, resource.DecimalSI),
		api.ResourceGPUCore:  *resource.NewQuantity(core, resource.DecimalSI),
		api.ResourceGPUCount: *resource.NewQuantity(slots, resource.DecimalSI),
	}
}

// AddGPUNode creates a simulated node: the Node object with the inventory
// annotation, then its status (capacity, allocatable, Ready), and removes
// any node.kubernetes.io/not-ready taint. It returns the node as stored.
func (c *Cluster) AddGPUNode(ctx context.Context, spec GPUNode) (*corev1.Node, error) {
	if spec.CPU == "" {
		spec.CPU = "64"
	}
	if spec.Memory == "" {
		spec.Memory = "512Gi"
	}
	if spec.Pods == 0 {
		spec.Pods = 1000
	}
	cpu, err := resource.ParseQuantity(spec.CPU)
	if err != nil {
		return nil, fmt.Errorf("node %s cpu: %w", spec.Name, err)
	}
	mem, err := resource.ParseQuantity(spec.Memory)
	if err != nil {
		return nil, fmt.Errorf("node %s memory: %w", spec.Name, err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    cpu,
		corev1.ResourceMemory: mem,
		corev1.ResourcePods:   *resource.NewQuantity(spec.Pods, resource.DecimalSI),
	}
	labels := map[string]string{corev1.LabelHostname: spec.Name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}
	maps.Copy(labels, spec.Labels)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels, Annotations: map[string]string{}}}
	if spec.Inventory != nil {
		if err := spec.Inventory.Validate(); err != nil {
			return nil, fmt.Errorf("node %s inventory: %w", spec.Name, err)
		}
		s, err := spec.Inventory.Encode()
		if err != nil {
			return nil, err
		}
		node.Annotations[api.AnnotationInventory] = s
		maps.Copy(capacity, GPUResources(spec.Inventory))
	}
	created, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", spec.Name, err)
	}
	now := metav1.NewTime(time.Now())
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "simulated by the gpuslice e2e harness", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: spec.Name}},
		NodeInfo:  corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "v1.37.2"},
	}
	updated, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s status: %w", spec.Name, err)
	}
	return c.removeNotReadyTaint(ctx, updated)
}

// removeNotReadyTaint drops the taint TaintNodesByCondition would add (the
// harness disables that plugin, but a cluster started otherwise may not).
func (c *Cluster) removeNotReadyTaint(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	has := func(n *corev1.Node) bool {
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady {
				return true
			}
		}
		return false
	}
	if !has(n) {
		return n, nil
	}
	var out *corev1.Node
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var keep []corev1.Taint
		for _, t := range cur.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				keep = append(keep, t)
			}
		}
		cur.Spec.Taints = keep
		out, err = c.Client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: remove not-ready taint: %w", n.Name, err)
	}
	return out, nil
}

// DeleteNode deletes a node (a missing node is not an error).
func (c *Cluster) DeleteNode(ctx context.Context, name string) error {
	err := c.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return nil
}

// SetNodeResources sets extended resources in a node's capacity and
// allocatable, as kubelet does from its device plugins' devices (the
// harness has no kubelet to report them).
func (c *Cluster) SetNodeResources(ctx context.Context, name string, rl corev1.ResourceList) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Status.Capacity == nil {
			cur.Status.Capacity = corev1.ResourceList{}
		}
		if cur.Status.Allocatable == nil {
			cur.Status.Allocatable = corev1.ResourceList{}
		}
		for k, v := range rl {
			cur.Status.Capacity[k] = v
			cur.Status.Allocatable[k] = v
		}
		_, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: set resources: %w", name, err)
	}
	return nil
}
