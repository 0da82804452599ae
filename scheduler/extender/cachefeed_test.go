package extender

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// The cache follows the informers: bound pods are confirmed, finished and
// deleted pods free their shares, node inventory changes apply.
func TestCacheFollowsInformers(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 10, 0, 0))
	q := testutil.Pod("q", testutil.Container("c", 10, 0, 0))
	nodes := []*v1.Node{testutil.GPUNode(t, "n1", 2, "T4", 16, 48)}
	ext, c, client := newTestExtender(t, nil, p, q)
	ctx := t.Context()
	for _, n := range nodes {
		if _, err := client.CoreV1().Nodes().Create(ctx, n, metaCreate); err != nil {
			t.Fatal(err)
		}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf, podInf := factory.Core().V1().Nodes().Informer(), factory.Core().V1().Pods().Informer()
	if _, err := c.AddEventHandlers(nodeInf, podInf); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	if !toolscache.WaitForCacheSync(ctx.Done(), nodeInf.HasSynced, podInf.HasSynced) {
		t.Fatal("caches did not sync")
	}
	schedule(t, ext, p, "n1")
	schedule(t, ext, q, "n1")
	testutil.Poll(t, "both placements confirmed", func() bool { a, cf := c.Stats(); return a == 0 && cf == 2 })
	if diff := cmp.Diff(map[string][]int64{"n1": {6, 6}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}

	// A finished pod frees its shares.
	done, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done.Status.Phase = v1.PodSucceeded
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "finished pod freed", func() bool { return !c.HasPod(p.UID) })
	// A deleted pod frees its shares.
	if err := client.CoreV1().Pods("default").Delete(ctx, "q", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "deleted pod freed", func() bool { return !c.HasPod(q.UID) })
	if diff := cmp.Diff(map[string][]int64{"n1": {16, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// A new node appears through the informer.
	if _, err := client.CoreV1().Nodes().Create(ctx, testutil.GPUNode(t, "n2", 1, "A100", 40, 48), metaCreate); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "node n2 in the cache", func() bool { return len(c.Snapshot()) == 2 })
	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "node n2 gone", func() bool { return len(c.Snapshot()) == 1 })
}
