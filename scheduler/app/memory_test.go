package app

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// BenchmarkCacheMemory reports the live heap the extender's state takes
// per node and per bound pod: what its informers keep (the slim node and
// the cache.Pod of each pod, in an indexer as the informers') and what the
// cache builds from them,
// after a garbage collection. Run it with -benchtime 1x; it measures
// memory, not time:
//
//	go test -run '^$' -bench CacheMemory -benchtime 1x ./scheduler/app/
func BenchmarkCacheMemory(b *testing.B) {
	const nodes, pods = 5000, 40000
	for range b.N {
		before := liveHeap()
		c := cache.New(klog.Background(), 1024, time.Hour)
		nodeStore := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{})
		podStore := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{})
		names := make([]string, nodes)
		for i := range names {
			names[i] = fmt.Sprintf("gpu-%05d", i)
			n := cache.NewNode(testutil.GPUNode(b, names[i], 8, "H100", 80, 48))
			if err := nodeStore.Add(n); err != nil {
				b.Fatal(err)
			}
			c.OnNode(n)
		}
		withNodes := liveHeap()
		for i := range pods {
			p := placedPod(b, i, names[i%nodes], i/nodes%8)
			s, _ := cache.TransformPod(p)
			if err := podStore.Add(s); err != nil {
				b.Fatal(err)
			}
			c.OnPod(s)
		}
		if got := c.Counts(); got.Confirmed != pods {
			b.Fatalf("cache holds %+v, want %d confirmed pods", got, pods)
		}
		withPods := liveHeap()
		b.ReportMetric(float64(withNodes-before)/nodes, "B/node")
		b.ReportMetric(float64(withPods-withNodes)/pods, "B/pod")
		b.ReportMetric(float64(withPods-before)/(1<<20), "MiB-total")
		runtime.KeepAlive(nodeStore)
		runtime.KeepAlive(podStore)
		runtime.KeepAlive(c)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// placedPod is a typical bound GPU pod: one container with a 4 GiB share,
// ordinary pod clutter (env, volume, probes), and the placement the
// extender would have written.
func placedPod(b testing.TB, i int, node string, gpu int) *v1.Pod {
	p := testutil.Pod(fmt.Sprintf("pod-%06d", i), testutil.Container("main", 4, 0, 0))
	p.UID = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
	p.Namespace = "team-a"
	p.Spec.NodeName = node
	p.Spec.Volumes = []v1.Volume{{Name: "data"}}
	p.Spec.Containers[0].Image = "registry.example.com/team-a/model-server:1.2.3"
	p.Spec.Containers[0].Env = []v1.EnvVar{{Name: "MODEL", Value: "llama"}, {Name: "PORT", Value: "8080"}}
	p.Status.Phase = v1.PodRunning
	pl := &api.Placement{Version: api.PlacementVersion, Node: node, AssignedAt: testutil.Now.UTC(),
		Containers: []api.ContainerPlacement{{Name: "main", Devices: []api.DeviceShare{{UUID: testutil.GPUUUID(node, gpu), Index: gpu, Slices: 4, Slots: 1}}}}}
	s, err := pl.Encode()
	if err != nil {
		b.Fatal(err)
	}
	p.Annotations = map[string]string{api.AnnotationPlacement: s}
	return p
}
