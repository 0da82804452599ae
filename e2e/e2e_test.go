// Package e2e holds gpuslice's end-to-end tests: real etcd, kube-apiserver,
// kube-scheduler (with manifests/scheduler-config.yaml) and the gpuslice
// extender, started by package harness, with simulated GPU nodes. The tests
// check what users see: where pods land, the placement annotations, that
// no GPU is ever over-committed, the FailedScheduling reasons, bursts,
// deletion and an extender restart under load.
//
// Run them with `make e2e` (it builds the binaries first). Missing binaries
// fail the tests with a message that says how to build them.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
	"github.com/gpuslice/gpuslice/internal/inspect"
)

// groupLabel keeps each test's pods on its own nodes: every node of a test
// carries it, and every pod of the test selects it.
const groupLabel = "e2e.gpuslice.io/group"

// suspendPolicy suspends an admission policy of c until the test ends, or
// until the test calls restore.
func suspendPolicy(ctx context.Context, t *testing.T, c *harness.Cluster, policy string) (restore func(context.Context) error) {
	t.Helper()
	restore, err := c.SuspendPolicy(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restore(context.Background()); err != nil {
			t.Errorf("restore policy: %v", err)
		}
	})
	return restore
}

// startCluster starts a control plane for one top-level test and checks,
// after it stopped, that no component process and no listening port is left.
func startCluster(t *testing.T, opts harness.Options) *harness.Cluster {
	t.Helper()
	var c *harness.Cluster
	// Registered first, so it runs after the harness's own Stop cleanup.
	t.Cleanup(func() {
		if c == nil {
			return
		}
		c.Stop()
		for name, pid := range c.Pids() {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("leak: %s (pid %d) still exists after Stop", name, pid)
			}
		}
		for _, addr := range []string{strings.TrimPrefix(c.APIServerURL, "https://"), c.ExtenderAddr()} {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Errorf("leak: %s still accepts connections after Stop", addr)
			}
		}
	})
	c = harness.Start(t, opts)
	return c
}

// env is one test's isolated slice of a cluster: a namespace and a group of
// nodes that only its pods select.
type env struct {
	t     *testing.T
	c     *harness.Cluster
	ctx   context.Context
	ns    string
	group string
	// inv maps node name to its inventory.
	inv map[string]*api.Inventory
}

// newEnv creates a namespace and nodes of the given shapes for the running
// (sub)test, named <group>-<n>, and deletes the pods and nodes when the test
// ends.
func newEnv(t *testing.T, c *harness.Cluster, shapes ...harness.Shape) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	nonDNS := regexp.MustCompile(`[^a-z0-9-]+`)
	group := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(group) > 40 {
		group = strings.Trim(group[len(group)-40:], "-")
	}
	e := &env{t: t, c: c, ctx: ctx, ns: group, group: group, inv: map[string]*api.Inventory{}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		defer cancel()
		// Without a kubelet a bound pod only goes away with grace period 0.
		zero := int64(0)
		if err := c.Client.CoreV1().Pods(e.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
			t.Errorf("delete pods: %v", err)
		}
		for name := range e.inv {
			if err := c.DeleteNode(context.Background(), name); err != nil {
				t.Errorf("%v", err)
			}
		}
	})
	for i, s := range shapes {
		name := fmt.Sprintf("%s-%d", group, i)
		inv := s.Inventory(name, c.SliceMiB)
		if _, err := c.AddGPUNode(ctx, harness.GPUNode{Name: name, Inventory: inv, Labels: map[string]string{groupLabel: group}}); err != nil {
			t.Fatalf("add node: %v", err)
		}
		e.inv[name] = inv
	}
	return e
}

// ctr is a container of a test pod and its gpuslice request.
type ctr struct {
	name             string
	init             bool
	mem, core, count int64
}

// pod builds a pod of the env: it selects the env's nodes and asks for the
// containers' gpuslice resources (limits, which default the requests).
func (e *env) pod(name string, cs ...ctr) *corev1.Pod {
	zero := int64(0)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{groupLabel: e.group},
			TerminationGracePeriodSeconds: &zero,
		},
	}
	for _, c := range cs {
		k := corev1.Container{Name: c.name, Image: "registry.k8s.io/pause:3.10"}
		lim := corev1.ResourceList{}
		for rn, v := range map[corev1.ResourceName]int64{api.ResourceGPUMem: c.mem, api.ResourceGPUCore: c.core, api.ResourceGPUCount: c.count} {
			if v != 0 {
				lim[rn] = *resource.NewQuantity(v, resource.DecimalSI)
			}
		}
		if len(lim) > 0 {
			k.Resources.Limits = lim
		}
		if c.init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, k)
		} else {
			p.Spec.Containers = append(p.Spec.Containers, k)
		}
	}
	return p
}

// one is a pod with one container named "main".
func (e *env) one(name string, mem, core, count int64) *corev1.Pod {
	return e.pod(name, ctr{name: "main", mem: mem, core: core, count: count})
}

// ones returns n one-container pods asking mem gpu-mem slices each, named
// by format and their index.
func (e *env) ones(format string, n int, mem int64) []*corev1.Pod {
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = e.one(fmt.Sprintf(format, i), mem, 0, 0)
	}
	return pods
}

// createAsync creates pods as createAll does, in a goroutine of its own;
// the channel receives createAll's result.
func (e *env) createAsync(pods []*corev1.Pod, workers int) <-chan error {
	created := make(chan error, 1)
	go func() { created <- e.createAll(pods, workers) }()
	return created
}

// create creates pods with up to workers concurrent requests, failing the
// test on an error.
func (e *env) create(pods []*corev1.Pod, workers int) {
	e.t.Helper()
	if err := e.createAll(pods, workers); err != nil {
		e.t.Fatal(err)
	}
}

// createAll creates pods with up to workers concurrent requests; it is safe
// to call from any goroutine.
func (e *env) createAll(pods []*corev1.Pod, workers int) error {
	ch := make(chan *corev1.Pod)
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range ch {
				if _, err := e.c.Client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("create pod %s: %w", p.Name, err)
				}
			}
		})
	}
	for _, p := range pods {
		ch <- p
	}
	close(ch)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// list returns the env's pods.
func (e *env) list(ctx context.Context) ([]corev1.Pod, error) {
	l, err := e.c.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	return l.Items, nil
}

// listChecked returns the env's pods once check and the invariant (with no
// trusted pods) held for them.
func (e *env) listChecked(ctx context.Context) ([]corev1.Pod, error) {
	e.t.Helper()
	ps, err := e.list(ctx)
	if err != nil {
		return nil, err
	}
	e.check(ctx, ps)
	e.invariant(ctx, nil)
	return ps, nil
}

// nodes returns the env's nodes.
func (e *env) nodes(ctx context.Context) ([]corev1.Node, error) {
	l, err := e.c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.Set{groupLabel: e.group}.String()})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return l.Items, nil
}

// poll calls cond every interval until it returns true, or fails the test
// after timeout with the last error.
func (e *env) poll(what string, interval, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	e.t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(e.ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		e.t.Fatalf("%s: not reached within %v: %v (last: %v)", what, timeout, err, last)
	}
}

// waitBound waits until the named pods are bound and returns them, checked
// (placements and over-commit) on every poll.
func (e *env) waitBound(timeout time.Duration, names ...string) map[string]*corev1.Pod {
	e.t.Helper()
	var out map[string]*corev1.Pod
	interval := 100 * time.Millisecond
	if len(names) > 50 {
		// Listing and checking hundreds of pods costs the (shared) CPUs.
		interval = 500 * time.Millisecond
	}
	e.poll(fmt.Sprintf("%d pods bound", len(names)), interval, timeout, func(ctx context.Context) (bool, error) {
		pods, err := e.list(ctx)
		if err != nil {
			return false, err
		}
		e.check(ctx, pods)
		byName := map[string]*corev1.Pod{}
		for i := range pods {
			byName[pods[i].Name] = &pods[i]
		}
		var waiting []string
		for _, n := range names {
			if p := byName[n]; p == nil || p.Spec.NodeName == "" {
				waiting = append(waiting, n)
			}
		}
		if len(waiting) > 0 {
			return false, fmt.Errorf("%d not bound yet, e.g. %v", len(waiting), waiting[:min(5, len(waiting))])
		}
		out = byName
		return true, nil
	})
	return out
}

// waitFailedScheduling waits for a FailedScheduling event of the pod whose
// message contains every want string, then checks the pod is still unbound.
func (e *env) waitFailedScheduling(name string, timeout time.Duration, want ...string) string {
	e.t.Helper()
	var msg string
	e.poll("FailedScheduling event for "+name, 100*time.Millisecond, timeout, func(ctx context.Context) (bool, error) {
		var err error
		msg, err = e.failedScheduling(ctx, name, want)
		return msg != "", err
	})
	p, err := e.c.Client.CoreV1().Pods(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get pod %s: %v", name, err)
	}
	if p.Spec.NodeName != "" || p.Annotations[api.AnnotationPlacement] != "" {
		e.t.Fatalf("pod %s: bound to %q (placement %q) although FailedScheduling said: %s", name, p.Spec.NodeName, p.Annotations[api.AnnotationPlacement], msg)
	}
	e.t.Logf("pod %s pending: %s", name, msg)
	return msg
}

// waitPending waits for a FailedScheduling event of the pod whose message
// contains every want string, checking the invariant (with trusted
// placements) at every poll and failing at once if the pod gets bound.
func (e *env) waitPending(name string, trusted map[types.UID]string, timeout time.Duration, want ...string) {
	e.t.Helper()
	e.poll("FailedScheduling event for "+name, 100*time.Millisecond, timeout, func(ctx context.Context) (bool, error) {
		e.invariant(ctx, trusted)
		p, err := e.c.Client.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			e.t.Fatalf("pod %s bound to %s (placement %s); want it pending", name, p.Spec.NodeName, p.Annotations[api.AnnotationPlacement])
		}
		msg, err := e.failedScheduling(ctx, name, want)
		if msg != "" {
			e.t.Logf("pod %s pending: %s", name, msg)
		}
		return msg != "", err
	})
}

// failedScheduling returns the message of the pod's first FailedScheduling
// event that contains every want string, or "" and an error listing the
// messages seen so far.
func (e *env) failedScheduling(ctx context.Context, name string, want []string) (string, error) {
	evs, err := e.c.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=FailedScheduling"})
	if err != nil {
		return "", fmt.Errorf("list events: %w", err)
	}
	var seen []string
	for _, ev := range evs.Items {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(ev.Message, w)
		}
		if ok {
			return ev.Message, nil
		}
		seen = append(seen, ev.Message)
	}
	return "", fmt.Errorf("events so far: %q", seen)
}

// check validates every bound pod's placement against its request and the
// node inventory, and that no GPU of the env is over-committed. It fails the
// test at once on a violation.
func (e *env) check(ctx context.Context, pods []corev1.Pod) *inspect.View {
	e.t.Helper()
	nodes, err := e.nodes(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range pods {
		if err := e.checkPod(&pods[i]); err != nil {
			e.t.Fatalf("pod %s/%s: %v", pods[i].Namespace, pods[i].Name, err)
		}
	}
	v := inspect.Build(nodes, pods)
	if oc := v.Overcommitted(); len(oc) > 0 {
		e.t.Fatalf("GPUs over-committed:\n%s", strings.Join(oc, "\n"))
	}
	if len(v.Problems) > 0 {
		e.t.Fatalf("placement problems:\n%s", strings.Join(v.Problems, "\n"))
	}
	return v
}

// checkPod validates one pod: unbound pods carry no placement; bound pods
// asking for gpuslice resources carry one that matches every container's
// request and names GPUs of the pod's node.
func (e *env) checkPod(p *corev1.Pod) error {
	raw, has := p.Annotations[api.AnnotationPlacement]
	if p.Spec.NodeName == "" {
		if has {
			return fmt.Errorf("unbound pod has a placement %s", raw)
		}
		return nil
	}
	type want struct {
		name             string
		init             bool
		mem, core, count int64
	}
	var wants []want
	for i, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			w := want{name: c.Name, init: i == 0}
			w.mem = c.Resources.Limits.Name(api.ResourceGPUMem, resource.DecimalSI).Value()
			w.core = c.Resources.Limits.Name(api.ResourceGPUCore, resource.DecimalSI).Value()
			w.count = c.Resources.Limits.Name(api.ResourceGPUCount, resource.DecimalSI).Value()
			wants = append(wants, w)
		}
	}
	gpuPod := slices.ContainsFunc(wants, func(w want) bool { return w.mem+w.core+w.count > 0 })
	if !gpuPod {
		if has {
			return fmt.Errorf("pod without gpuslice requests has a placement %s", raw)
		}
		return nil
	}
	if !has {
		return errors.New("bound without a placement annotation")
	}
	pl, err := api.ParsePlacement(raw)
	if err != nil {
		return err
	}
	if pl.Node != p.Spec.NodeName {
		return fmt.Errorf("placement names node %s, pod is bound to %s", pl.Node, p.Spec.NodeName)
	}
	inv := e.inv[pl.Node]
	if inv == nil {
		return fmt.Errorf("bound to %s, not a node of this test", pl.Node)
	}
	gpus := map[string]api.GPU{}
	for _, g := range inv.GPUs {
		gpus[g.UUID] = g
	}
	models := p.Annotations[api.AnnotationGPUModels]
	for _, w := range wants {
		cp := pl.Container(w.name, w.init)
		if w.mem == 0 {
			if cp != nil && len(cp.Devices) > 0 {
				return fmt.Errorf("container %q asks for no GPU but holds %+v", w.name, cp.Devices)
			}
			continue
		}
		if cp == nil {
			return fmt.Errorf("container %q has no placement", w.name)
		}
		k := max(w.count, 1)
		if int64(len(cp.Devices)) != k {
			return fmt.Errorf("container %q: %d GPUs, want %d", w.name, len(cp.Devices), k)
		}
		seen := map[string]bool{}
		for _, d := range cp.Devices {
			g, ok := gpus[d.UUID]
			switch {
			case !ok:
				return fmt.Errorf("container %q: GPU %s is not on node %s", w.name, d.UUID, pl.Node)
			case seen[d.UUID]:
				return fmt.Errorf("container %q: GPU %s twice", w.name, d.UUID)
			case d.Index != g.Index:
				return fmt.Errorf("container %q: GPU %s index %d, inventory says %d", w.name, d.UUID, d.Index, g.Index)
			case d.Slices != w.mem/k || d.Core != w.core/k || d.Slots != 1:
				return fmt.Errorf("container %q: share %+v, want %d slices, %d core, 1 slot per GPU", w.name, d, w.mem/k, w.core/k)
			case models != "" && !slices.Contains(strings.Split(models, ","), g.Model):
				return fmt.Errorf("container %q: GPU model %q not in %q", w.name, g.Model, models)
			}
			seen[d.UUID] = true
		}
	}
	return nil
}

// deletePods deletes pods at once (grace period 0) and waits until they are
// gone from the API.
func (e *env) deletePods(names ...string) {
	e.t.Helper()
	zero := int64(0)
	for _, n := range names {
		if err := e.c.Client.CoreV1().Pods(e.ns).Delete(e.ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			e.t.Fatalf("delete pod %s: %v", n, err)
		}
	}
	e.poll(fmt.Sprintf("%d pods deleted", len(names)), 50*time.Millisecond, 30*time.Second, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			_, err := e.c.Client.CoreV1().Pods(e.ns).Get(ctx, n, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("pod %s still there: %w", n, err)
			}
		}
		return true, nil
	})
}

// view returns the inspect view of the env after checking it.
func (e *env) view() *inspect.View {
	e.t.Helper()
	pods, err := e.list(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.check(e.ctx, pods)
}
