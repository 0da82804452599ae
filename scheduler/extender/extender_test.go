package extender

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

var (
	metaCreate = metav1.CreateOptions{}
	metaList   = metav1.ListOptions{}
)

func argsFor(p *v1.Pod, nodes ...string) *extenderv1.ExtenderArgs {
	return &extenderv1.ExtenderArgs{Pod: p, NodeNames: names(nodes...)}
}

func bindArgs(p *v1.Pod, node string) *extenderv1.ExtenderBindingArgs {
	return &extenderv1.ExtenderBindingArgs{PodName: p.Name, PodNamespace: p.Namespace, PodUID: p.UID, Node: node}
}

func testNodes(t *testing.T) []*v1.Node {
	return []*v1.Node{
		testutil.GPUNode(t, "a100", 8, "A100", 40, 48),
		testutil.GPUNode(t, "t4", 4, "T4", 16, 48),
		{ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}},
	}
}

func TestFilter(t *testing.T) {
	busy := testutil.Pod("busy", testutil.Container("c", 40, 0, 8))
	busy.Spec.NodeName = "a100"
	tests := []struct {
		name             string
		pod              *v1.Pod
		full             bool
		want             []string
		wantFailed       map[string]string
		wantUnresolvable map[string]string
	}{
		{
			name: "small pod fits both GPU nodes",
			pod:  testutil.Pod("p", testutil.Container("c", 4, 0, 0)),
			want: []string{"a100", "t4"},
			wantUnresolvable: map[string]string{
				"cpu-only": "node has no gpuslice GPU inventory",
			},
		},
		{
			name: "too big for a T4 at all",
			pod:  testutil.Pod("p", testutil.Container("c", 20, 0, 0)),
			want: []string{"a100"},
			wantUnresolvable: map[string]string{
				"t4":       `insufficient gpu-mem on every GPU (container "c": needs 1 GPU(s) with 20 slices, 0 core, 1 slot free; 0 have the slices)`,
				"cpu-only": "node has no gpuslice GPU inventory",
			},
		},
		{
			name: "full node objects",
			pod:  testutil.Pod("p", testutil.Container("c", 4, 0, 0)),
			full: true,
			want: []string{"a100", "t4"},
			wantUnresolvable: map[string]string{
				"cpu-only": "node has no gpuslice GPU inventory",
			},
		},
		{
			name: "invalid request fails every node with the reason",
			pod:  testutil.Pod("p", testutil.Container("c", 3, 0, 2)),
			want: []string{},
			wantUnresolvable: map[string]string{
				"a100":     `invalid gpuslice request: container "c": gpu-mem 3 cannot be split evenly over 2 GPUs`,
				"t4":       `invalid gpuslice request: container "c": gpu-mem 3 cannot be split evenly over 2 GPUs`,
				"cpu-only": `invalid gpuslice request: container "c": gpu-mem 3 cannot be split evenly over 2 GPUs`,
			},
		},
		{
			name: "binding required: the nodes time-slice, enforcing nothing",
			pod:  annotated(testutil.Pod("p", testutil.Container("c", 4, 0, 0)), api.AnnotationEnforcement, "binding"),
			want: []string{},
			wantUnresolvable: map[string]string{
				"a100":     `no GPU enforces the isolation the pod requires (container "c": requires binding enforcement, 8 GPU(s) of an allowed model enforce less)`,
				"t4":       `no GPU enforces the isolation the pod requires (container "c": requires binding enforcement, 4 GPU(s) of an allowed model enforce less)`,
				"cpu-only": "node has no gpuslice GPU inventory",
			},
		},
		{
			name: "none required: any GPU will do",
			pod:  annotated(testutil.Pod("p", testutil.Container("c", 4, 0, 0)), api.AnnotationEnforcement, "none"),
			want: []string{"a100", "t4"},
			wantUnresolvable: map[string]string{
				"cpu-only": "node has no gpuslice GPU inventory",
			},
		},
		{
			name: "unknown enforcement is an invalid request",
			pod:  annotated(testutil.Pod("p", testutil.Container("c", 4, 0, 0)), api.AnnotationEnforcement, "strict"),
			want: []string{},
			wantUnresolvable: map[string]string{
				"a100":     `invalid gpuslice request: annotation gpuslice.io/enforcement="strict": must be one of [binding ceiling none]`,
				"t4":       `invalid gpuslice request: annotation gpuslice.io/enforcement="strict": must be one of [binding ceiling none]`,
				"cpu-only": `invalid gpuslice request: annotation gpuslice.io/enforcement="strict": must be one of [binding ceiling none]`,
			},
		},
		{
			name: "pod without gpuslice resources passes through",
			pod:  testutil.Pod("p", testutil.Container("c", 0, 0, 0)),
			want: []string{"a100", "t4", "cpu-only"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := testNodes(t)
			ext, _, _ := newTestExtender(t, nodes)
			args := argsFor(tc.pod, "a100", "t4", "cpu-only")
			if tc.full {
				args = &extenderv1.ExtenderArgs{Pod: tc.pod, Nodes: &v1.NodeList{}}
				for _, n := range nodes {
					args.Nodes.Items = append(args.Nodes.Items, *n)
				}
			}
			res := ext.Filter(t.Context(), args)
			var got []string
			if tc.full {
				got = []string{}
				for _, n := range res.Nodes.Items {
					got = append(got, n.Name)
				}
			} else {
				got = *res.NodeNames
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnresolvable, map[string]string(res.FailedAndUnresolvableNodes), cmpEmptyMap); diff != "" {
				t.Errorf("unresolvable (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFailed, map[string]string(res.FailedNodes), cmpEmptyMap); diff != "" {
				t.Errorf("failed (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmptyMap = cmp.FilterValues(func(x, y map[string]string) bool { return len(x) == 0 && len(y) == 0 }, cmp.Ignore())

func TestFilterFullNodeIsResolvable(t *testing.T) {
	busy := testutil.Pod("busy", testutil.Container("c", 64, 0, 4))
	ext, _, client := newTestExtender(t, testNodes(t), busy)
	schedule(t, ext, busy, "t4")
	_ = client
	res := ext.Filter(t.Context(), argsFor(testutil.Pod("p", testutil.Container("c", 4, 0, 0)), "t4"))
	if len(*res.NodeNames) != 0 {
		t.Fatalf("pod fit a full node: %v", *res.NodeNames)
	}
	if _, ok := res.FailedNodes["t4"]; !ok {
		t.Fatalf("full node is not in FailedNodes (preemption could free it): %+v", res)
	}
}

func TestPrioritize(t *testing.T) {
	half := testutil.Pod("half", testutil.Container("c", 20, 0, 0))
	ext, _, _ := newTestExtender(t, []*v1.Node{testutil.GPUNode(t, "n1", 1, "A100", 40, 48), testutil.GPUNode(t, "n2", 1, "A100", 40, 48), testutil.GPUNode(t, "n3", 1, "A100", 40, 48)}, half)
	schedule(t, ext, half, "n2")
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	for _, memo := range []bool{true, false} {
		if memo {
			ext.Filter(t.Context(), argsFor(p, "n1", "n2", "n3"))
		} else {
			ext.pending.remove(p.UID)
		}
		got, err := ext.Prioritize(t.Context(), argsFor(p, "n1", "n2", "n3", "missing"))
		if err != nil {
			t.Fatal(err)
		}
		// Zero scores are left out: kube-scheduler adds nothing for an
		// unlisted node, as it would add nothing for a zero.
		want := extenderv1.HostPriorityList{{Host: "n2", Score: 10}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("memo=%v: binpack scores (-want +got):\n%s", memo, diff)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		s, lo, hi float64
		ok        bool
		want      int64
	}{
		{s: 5, lo: 0, hi: 5, ok: true, want: 10},
		{s: 0, lo: 0, hi: 5, ok: true, want: 0},
		{s: 4.99, lo: 0, hi: 5, ok: true, want: 8},
		{s: 3, lo: 3, hi: 3, ok: true, want: 10},
		{s: 3, lo: 3, hi: 3, ok: false, want: 0},
	}
	for _, tc := range tests {
		if got := normalize(tc.s, tc.ok, tc.lo, tc.hi); got != tc.want {
			t.Errorf("normalize(%v, %v, %v, %v) = %d, want %d", tc.s, tc.ok, tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestBind(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 8, 50, 2))
	ext, c, client := newTestExtender(t, testNodes(t), p)
	ext.Filter(t.Context(), argsFor(p, "a100"))
	client.ClearActions()
	if err := ext.Bind(t.Context(), bindArgs(p, "a100")); err != nil {
		t.Fatal(err)
	}
	if n := len(client.Actions()); n != 1 {
		t.Errorf("bind made %d API calls, want exactly 1: %v", n, client.Actions())
	}
	got, err := client.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "a100" {
		t.Fatalf("pod bound to %q", got.Spec.NodeName)
	}
	pl, err := api.ParsePlacement(got.Annotations[api.AnnotationPlacement])
	if err != nil {
		t.Fatal(err)
	}
	want := &api.Placement{Version: api.PlacementVersion, Node: "a100", AssignedAt: testutil.Now, Containers: []api.ContainerPlacement{{
		Name: "c",
		Devices: []api.DeviceShare{
			{UUID: "GPU-a100-0", Index: 0, Slices: 4, Core: 25, Slots: 1},
			{UUID: "GPU-a100-1", Index: 1, Slices: 4, Core: 25, Slots: 1},
		},
	}}}
	if diff := cmp.Diff(want, pl); diff != "" {
		t.Errorf("placement (-want +got):\n%s", diff)
	}
	if a, _ := c.Stats(); a != 1 {
		t.Errorf("assumed pods = %d, want 1", a)
	}
	// A second bind of the same pod is refused and changes nothing.
	before := testutil.FreeSlices(c)
	client.ClearActions()
	if err := ext.Bind(t.Context(), bindArgs(p, "a100")); err == nil || !strings.Contains(err.Error(), "already bound") {
		t.Fatalf("double bind: err = %v", err)
	}
	if len(client.Actions()) != 0 {
		t.Errorf("double bind called the API: %v", client.Actions())
	}
	if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("double bind changed the cache (-before +after):\n%s", diff)
	}
}

func TestBindFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		// react makes the Binding fail.
		react func(client *fake.Clientset)
		// wantErr is what the error mentions; keeps whether the shares
		// stay charged; calls, when not 0, the API calls the bind makes.
		wantErr string
		keeps   bool
		calls   int
	}{
		{name: "api error forgets the assumption", react: func(client *fake.Clientset) {
			client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("etcdserver: request timed out")
			})
		}, wantErr: "request timed out"},
		{name: "ambiguous failure that bound the pod keeps the shares", react: func(client *fake.Clientset) {
			bind := bindingReactor(client)
			client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if _, _, err := bind(a); err != nil {
					return true, nil, err
				}
				return true, nil, errors.New("http2: client connection lost")
			})
		}, keeps: true},
		{name: "ambiguous failure with an unreadable pod keeps the shares", react: func(client *fake.Clientset) {
			client.PrependReactor("*", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("connection refused")
			})
		}, keeps: true},
		{name: "definite refusal forgets without a read", react: func(client *fake.Clientset) {
			client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewConflict(v1.Resource("pods"), "p", errors.New("precondition failed"))
			})
		}, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testutil.Pod("p", testutil.Container("c", 8, 0, 0))
			ext, c, client := newTestExtender(t, testNodes(t), p)
			before := testutil.FreeSlices(c)
			tc.react(client)
			ext.Filter(t.Context(), argsFor(p, "a100"))
			client.ClearActions()
			if err := ext.Bind(t.Context(), bindArgs(p, "a100")); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want an error mentioning %q", err, tc.wantErr)
			}
			if c.HasPod(p.UID) != tc.keeps {
				t.Fatalf("pod still assumed = %v after the failed bind, want %v", !tc.keeps, tc.keeps)
			}
			if diff := cmp.Diff(before, testutil.FreeSlices(c)); !tc.keeps && diff != "" {
				t.Errorf("failed bind left shares behind (-before +after):\n%s", diff)
			}
			if n := len(client.Actions()); tc.calls != 0 && n != tc.calls {
				t.Errorf("failed bind made %d API calls, want %d: %v", n, tc.calls, client.Actions())
			}
		})
	}
	t.Run("uid differs from the filtered pod", func(t *testing.T) {
		p := testutil.Pod("p", testutil.Container("c", 8, 0, 0))
		ext, c, _ := newTestExtender(t, testNodes(t), p)
		before := testutil.FreeSlices(c)
		ext.Filter(t.Context(), argsFor(p, "a100"))
		args := bindArgs(p, "a100")
		args.PodUID = "another-uid"
		if err := ext.Bind(t.Context(), args); err == nil {
			t.Fatal("bind of an unknown uid succeeded")
		}
		if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
			t.Errorf("(-before +after):\n%s", diff)
		}
	})
	t.Run("recreated pod: the apiserver rejects the uid precondition", func(t *testing.T) {
		old := testutil.Pod("p", testutil.Container("c", 8, 0, 0))
		ext, c, client := newTestExtender(t, testNodes(t))
		ext.Filter(t.Context(), argsFor(old, "a100"))
		recreated := testutil.Pod("p", testutil.Container("c", 8, 0, 0))
		recreated.UID = "uid-new"
		if _, err := client.CoreV1().Pods("default").Create(t.Context(), recreated, metaCreate); err != nil {
			t.Fatal(err)
		}
		before := testutil.FreeSlices(c)
		if err := ext.Bind(t.Context(), bindArgs(old, "a100")); err == nil || !strings.Contains(err.Error(), "precondition") {
			t.Fatalf("err = %v, want a precondition failure", err)
		}
		if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
			t.Errorf("(-before +after):\n%s", diff)
		}
	})
	t.Run("pod no longer fits at bind time", func(t *testing.T) {
		a := testutil.Pod("a", testutil.Container("c", 64, 0, 4))
		b := testutil.Pod("b", testutil.Container("c", 64, 0, 4))
		ext, c, _ := newTestExtender(t, testNodes(t), a, b)
		ext.Filter(t.Context(), argsFor(a, "t4"))
		ext.Filter(t.Context(), argsFor(b, "t4"))
		if err := ext.Bind(t.Context(), bindArgs(a, "t4")); err != nil {
			t.Fatal(err)
		}
		before := testutil.FreeSlices(c)
		err := ext.Bind(t.Context(), bindArgs(b, "t4"))
		if err == nil || !strings.Contains(err.Error(), "no longer fits") {
			t.Fatalf("err = %v", err)
		}
		if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
			t.Errorf("(-before +after):\n%s", diff)
		}
	})
}

// Concurrent binds race for the last room on one GPU: exactly the ones that
// fit win, and no GPU is over-committed.
func TestBindConcurrentNoOvercommit(t *testing.T) {
	var pods []*v1.Pod
	for i := range 20 {
		pods = append(pods, testutil.Pod("p"+string(rune('a'+i)), testutil.Container("c", 3, 0, 0)))
	}
	ext, c, _ := newTestExtender(t, []*v1.Node{testutil.GPUNode(t, "t4", 1, "T4", 16, 48)}, pods...)
	for _, p := range pods {
		ext.Filter(t.Context(), argsFor(p, "t4"))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, p := range pods {
		wg.Go(func() {
			if err := ext.Bind(t.Context(), bindArgs(p, "t4")); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 5 {
		t.Errorf("%d pods of 3 slices bound on a 16-slice GPU, want 5", ok)
	}
	if diff := cmp.Diff(map[string][]int64{"t4": {1}}, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPreempt(t *testing.T) {
	victim := testutil.Pod("victim", testutil.Container("c", 16, 0, 0))
	other := testutil.Pod("other", testutil.Container("c", 8, 0, 0))
	ext, _, _ := newTestExtender(t, []*v1.Node{testutil.GPUNode(t, "n1", 1, "T4", 16, 48), testutil.GPUNode(t, "n2", 1, "T4", 16, 48)}, victim, other)
	schedule(t, ext, victim, "n1")
	schedule(t, ext, other, "n2")
	p := testutil.Pod("p", testutil.Container("c", 12, 0, 0))
	args := &extenderv1.ExtenderPreemptionArgs{Pod: p, NodeNameToMetaVictims: map[string]*extenderv1.MetaVictims{
		"n1": {Pods: []*extenderv1.MetaPod{{UID: string(victim.UID)}}},
		"n2": {Pods: []*extenderv1.MetaPod{{UID: "not-a-gpu-pod"}}},
	}}
	res, err := ext.Preempt(t.Context(), args)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*extenderv1.MetaVictims{"n1": args.NodeNameToMetaVictims["n1"]}
	if diff := cmp.Diff(want, res.NodeNameToMetaVictims); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// schedule filters the pod on the node and binds it there.
func schedule(t *testing.T, ext *Extender, p *v1.Pod, node string) {
	t.Helper()
	if res := ext.Filter(t.Context(), argsFor(p, node)); len(*res.NodeNames) != 1 {
		t.Fatalf("pod %s does not fit %s: %+v", p.Name, node, res)
	}
	if err := ext.Bind(t.Context(), bindArgs(p, node)); err != nil {
		t.Fatal(err)
	}
}

// A new cache built from the pods' placement annotations has the same free
// capacity as the cache that made the placements (extender restart).
func TestCacheRebuildFromAnnotations(t *testing.T) {
	nodes := []*v1.Node{testutil.GPUNode(t, "a100", 8, "A100", 40, 48), testutil.GPUNode(t, "t4", 4, "T4", 16, 48)}
	ext, c, client := newTestExtender(t, nodes)
	ctx := t.Context()
	var pods []*v1.Pod
	for i, spec := range [][3]int64{{4, 0, 0}, {10, 50, 0}, {16, 0, 2}, {40, 100, 1}, {3, 0, 0}, {8, 20, 0}} {
		p := testutil.Pod("p"+string(rune('a'+i)), testutil.Container("c", spec[0], spec[1], spec[2]))
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metaCreate); err != nil {
			t.Fatal(err)
		}
		res := ext.Filter(ctx, argsFor(p, "a100", "t4"))
		if len(*res.NodeNames) == 0 {
			t.Fatalf("pod %d fits nowhere: %v", i, res.FailedNodes)
		}
		if err := ext.Bind(ctx, bindArgs(p, (*res.NodeNames)[0])); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	want := testutil.FreeSlices(c)

	logger, _ := ktesting.NewTestContext(t)
	fresh := cache.New(logger, 1024, time.Minute)
	// Pods arrive before their nodes, as informers may deliver them.
	list, err := client.CoreV1().Pods("default").List(ctx, metaList)
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		fresh.OnPod(&list.Items[i])
	}
	for _, n := range nodes {
		fresh.SetNode(n.Name, n.Annotations[api.AnnotationInventory])
	}
	if diff := cmp.Diff(want, testutil.FreeSlices(fresh)); diff != "" {
		t.Fatalf("rebuilt cache differs (-want +got):\n%s", diff)
	}
	// Deleting every pod frees exactly their shares.
	for _, p := range pods {
		fresh.RemovePod(p.UID)
	}
	if diff := cmp.Diff(map[string][]int64{"a100": {40, 40, 40, 40, 40, 40, 40, 40}, "t4": {16, 16, 16, 16}}, testutil.FreeSlices(fresh)); diff != "" {
		t.Fatalf("after deleting all pods (-want +got):\n%s", diff)
	}
}

func annotated(p *v1.Pod, key, value string) *v1.Pod {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[key] = value
	return p
}
